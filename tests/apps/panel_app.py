"""A HoloViz Panel dashboard whose panel loads after the page does (``defer_load``), from slow data."""

import time

import panel as pn


def sales_panel() -> pn.pane.HTML:
    time.sleep(2.5)  # the slow data source: the app's behaviour under test
    return pn.pane.HTML(
        '<div id="late-panel" style="background:rgb(200,0,0);width:600px;height:300px"></div>',
        width=620,
        height=320,
    )


pn.Column("# Sales", pn.panel(sales_panel, defer_load=True)).servable()
