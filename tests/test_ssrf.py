"""SSRF: raw URLs in every bypass form are refused, and inside the browser a dashboard's redirects and
subrequests to internal addresses are blocked; an "internal" server on another port proves no request
reached it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar, MediaType, Request, Response, get
from litestar.datastructures import State
from litestar.params import FromQuery

from .support.problems import assert_problem
from .support.servers import Server, serve
from .support.service import running_service


def internal_app() -> Litestar:
    """Stands for anything inside the operator's network: it only records that it was reached."""

    @get(["/", "/{path:path}"], media_type=MediaType.TEXT)
    async def anything(request: Request[Any, Any, Any]) -> str:
        request.app.state.paths.append(request.url.path)
        return "internal secret"

    return Litestar([anything], state=State({"paths": []}))


FETCHES_PAGE = """<!doctype html><html><body style="background:#fff">
<img src="%(to)s/img"><iframe src="%(to)s/frame"></iframe>
<script>
Promise.allSettled([fetch("%(to)s/fetch"), fetch("/own")])
  .then(() => { document.body.dataset.ready = "true"; });
</script></body></html>"""


def origin_app() -> Litestar:
    """A dashboard's own server, on 127.0.0.1 like every test server."""

    @get("/redirect")
    async def redirect(to: FromQuery[str]) -> Response[None]:
        return Response(None, status_code=302, headers={"Location": to})

    @get("/fetches", media_type=MediaType.HTML)
    async def fetches(to: FromQuery[str]) -> str:
        return FETCHES_PAGE % {"to": to}

    @get("/own", media_type=MediaType.TEXT)
    async def own(request: Request[Any, Any, Any]) -> str:
        request.app.state.paths.append("/own")
        return "ok"

    @get("/page", media_type=MediaType.HTML)
    async def page() -> str:
        return "<!doctype html><html><body><p>a public page</p></body></html>"

    return Litestar([redirect, fetches, own, page], state=State({"paths": []}))


@pytest.fixture(scope="module")
def internal() -> Iterator[Server]:
    with serve(internal_app()) as server:
        yield server


@pytest.fixture(scope="module")
def origin() -> Iterator[Server]:
    with serve(origin_app()) as server:
        yield server


@pytest.fixture
def internal_url(internal: Server) -> str:
    return internal.url


@pytest.fixture
def origin_url(origin: Server) -> str:
    return origin.url


@pytest.fixture
def internal_hits(internal: Server) -> list[str]:
    """Paths the internal server was asked for in this test."""
    paths: list[str] = internal.app.state.paths
    paths.clear()
    return paths


@pytest.fixture
def own_hits(origin: Server) -> list[str]:
    """Paths of the dashboard's own origin that counted their hits (``/own``), in this test."""
    paths: list[str] = origin.app.state.paths
    paths.clear()
    return paths


@pytest.fixture(scope="module")
def ssrf_dashboards(tmp_path_factory: pytest.TempPathFactory, origin: Server, internal: Server) -> Path:
    origin_url, internal_url = origin.url, internal.url
    internal_port = internal_url.rsplit(":", 1)[1]
    targets = {
        "internal": internal_url + "/redirected",
        "other-port": f"http://127.0.0.1:{internal_port}/",
        "mapped": f"http://[::ffff:127.0.0.1]:{internal_port}/",
        "localhost": f"http://localhost:{internal_port}/",
        "metadata": "http://169.254.169.254/latest/meta-data/",
        "metadata-v6": "http://[fd00:ec2::254]/latest/meta-data/",
        "file": "file:///etc/passwd",
    }
    lines = [
        f'[dashboards.redirect-{name}]\nurl = "{origin_url}/redirect?to={to}"\n'
        for name, to in targets.items()
    ]
    lines.append(
        f'[dashboards.fetches-internal]\nurl = "{origin_url}/fetches?to={internal_url}"\n'
        "wait = { selector = \"body[data-ready='true']\" }\n"
    )
    path = tmp_path_factory.mktemp("ssrf") / "dashboards.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


ENGINES = [
    pytest.param("playwright", id="playwright"),
    pytest.param("pyppeteer", id="pyppeteer", marks=pytest.mark.pyppeteer),
]


@pytest.fixture(scope="module", params=ENGINES)
async def guarded(request: pytest.FixtureRequest, ssrf_dashboards: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The service with the default policy (no private networks), with each engine."""
    if request.param == "pyppeteer":
        pytest.importorskip("pyppeteer")
    async with running_service({"engine": request.param, "dashboards_file": str(ssrf_dashboards)}) as client:
        yield client


@pytest.mark.parametrize(
    "target", ["internal", "other-port", "mapped", "localhost", "metadata", "metadata-v6", "file"]
)
async def test_dashboard_redirect_to_forbidden_address_is_403(
    guarded: httpx.AsyncClient, internal_hits: list[str], target: str
) -> None:
    response = await guarded.post("/v1/renders", json={"dashboard": f"redirect-{target}"})
    assert_problem(response, 403, "forbidden-url")
    assert internal_hits == []


async def test_dashboard_subrequests_to_internal_address_are_blocked(
    guarded: httpx.AsyncClient, internal_hits: list[str], own_hits: list[str]
) -> None:
    response = await guarded.post("/v1/renders", json={"dashboard": "fetches-internal"})
    assert response.status_code == 200, response.text  # the page renders; its forbidden requests fail
    assert own_hits == ["/own"]  # its own origin (a loopback address, other port) is trusted
    assert internal_hits == []  # img, iframe and fetch to another loopback port never left the browser
    metrics = (await guarded.get("/metrics")).text
    assert 'screenshot_blocked_requests_total{reason="loopback"}' in metrics


async def test_allowed_network_lets_the_same_subrequests_through(
    ssrf_dashboards: Path, internal_hits: list[str]
) -> None:
    """The control: with 127.0.0.1 explicitly allowed, the internal server is reached."""
    env = {"dashboards_file": str(ssrf_dashboards), "allowed_networks": "127.0.0.1/32"}
    async with running_service(env) as client:
        response = await client.post("/v1/renders", json={"dashboard": "fetches-internal"})
    assert response.status_code == 200, response.text
    assert sorted(internal_hits) == ["/fetch", "/frame", "/img"]


ALLOWLIST = ",".join(
    [
        "allowed.test",
        "*.wild.test",
        "localhost",
        "127.0.0.1",
        "[::1]",
        "0.0.0.0",
        "10.1.2.3",
        "100.64.0.1",
        "169.254.169.254",
        "[fd00:ec2::254]",
        "224.0.0.1",
    ]
)


@pytest.fixture(scope="module")
async def raw(dashboards_file: Path) -> AsyncIterator[httpx.AsyncClient]:
    """Raw URLs on, with an allowlist that even names internal addresses (they are still refused)."""
    env = {"dashboards_file": str(dashboards_file), "allow_raw_urls": "true", "url_allowlist": ALLOWLIST}
    async with running_service(env) as client:
        yield client


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("HTTP://allowed.test/", id="upper-case-scheme"),
        pytest.param("Https://allowed.test/", id="mixed-case-scheme"),
        pytest.param("file:///etc/passwd", id="file"),
        pytest.param("data:text/html,<h1>hi</h1>", id="data"),
        pytest.param("javascript:alert(1)", id="javascript"),
        pytest.param("ftp://allowed.test/", id="ftp"),
        pytest.param("gopher://allowed.test:70/", id="gopher"),
        pytest.param("ws://allowed.test/", id="websocket"),
        pytest.param("//allowed.test/", id="scheme-relative"),
        pytest.param("http:/allowed.test/", id="one-slash"),
        pytest.param("http://[::ffff:127.0.0.1]/", id="ipv4-mapped-ipv6"),
        pytest.param("http://[::ffff:7f00:1]/", id="ipv4-mapped-ipv6-hex"),
        pytest.param("http://0x7f.1/", id="hex-short"),
        pytest.param("http://0x7f000001/", id="hex-whole"),
        pytest.param("http://2130706433/", id="decimal"),
        pytest.param("http://127.1/", id="short-dotted"),
        pytest.param("http://0177.0.0.1/", id="octal"),
        pytest.param("http://127.0.0.1/", id="loopback-on-allowlist"),
        pytest.param("http://127.0.0.1:8000/v1/renders", id="loopback-with-port"),
        pytest.param("http://localhost/", id="name-resolving-to-loopback"),
        pytest.param("http://[::1]/", id="ipv6-loopback"),
        pytest.param("http://0.0.0.0/", id="unspecified"),
        pytest.param("http://10.1.2.3/", id="private"),
        pytest.param("http://100.64.0.1/", id="cgnat"),
        pytest.param("http://224.0.0.1/", id="multicast"),
        pytest.param("http://169.254.169.254/latest/meta-data/", id="metadata"),
        pytest.param("http://[fd00:ec2::254]/", id="metadata-ipv6"),
        pytest.param("http://allowed.test@127.0.0.1/", id="userinfo-host-after"),
        pytest.param("http://127.0.0.1@allowed.test/", id="userinfo-allowed-after"),
        pytest.param("http://allowed.test:pw@evil.test/", id="userinfo-password"),
        pytest.param("http://allowed.test\\@127.0.0.1/", id="backslash"),
        pytest.param("http://evil.test#@allowed.test/", id="fragment-trick"),
        pytest.param("http://evil.test?@allowed.test/", id="query-trick"),
        pytest.param("http://allowed.test./", id="trailing-dot"),
        pytest.param("http://аllowed.test/", id="idn-homograph"),  # noqa: RUF001  (Cyrillic a)
        pytest.param("http://１２７.０.０.１/", id="fullwidth-digits"),  # noqa: RUF001
        pytest.param("http://%31%32%37.0.0.1/", id="percent-encoded-host"),
        pytest.param("http://allowed.test:0/", id="port-zero"),
        pytest.param("http://allowed.test:65536/", id="port-too-big"),
        pytest.param("http://allowed.test /", id="space"),
        pytest.param("http://allowed.test/\n", id="newline"),
        pytest.param("http://evil.test/", id="not-allowlisted"),
        pytest.param("http://wild.test/", id="wildcard-apex"),
        pytest.param("http://evilwild.test/", id="wildcard-suffix-without-dot"),
        pytest.param("http://allowed.test.evil.test/", id="allowed-as-subdomain"),
        pytest.param("http:///allowed.test/", id="empty-host"),
    ],
)
async def test_raw_url_bypass_forms_are_refused(raw: httpx.AsyncClient, url: str) -> None:
    problem = assert_problem(await raw.post("/v1/renders", json={"url": url}), 403, "forbidden-url")
    assert problem["field"] == "url"


async def test_raw_url_with_dashboard_or_params_is_422(raw: httpx.AsyncClient) -> None:
    body = {"url": "http://allowed.test/", "dashboard": "box"}
    assert assert_problem(await raw.post("/v1/renders", json=body), 422, "invalid-request")["field"] == (
        "dashboard"
    )


async def test_raw_urls_on_an_allowed_network(
    origin_url: str, internal_url: str, internal_hits: list[str]
) -> None:
    """An allowlisted raw URL renders; its redirect to a host off the allowlist does not, even though
    that host is on a network the operator allowed."""
    env = {"allow_raw_urls": "true", "url_allowlist": "localhost", "allowed_networks": "127.0.0.0/8,::1/128"}
    origin = origin_url.replace("127.0.0.1", "localhost")
    async with running_service(env) as client:
        ok = await client.post("/v1/renders", json={"url": origin + "/page"})
        assert ok.status_code == 200, ok.text
        away = await client.post("/v1/renders", json={"url": f"{origin}/redirect?to={internal_url}/x"})
        problem = assert_problem(away, 403, "forbidden-url")
        assert problem["step"] == "navigate"
    assert internal_hits == []
