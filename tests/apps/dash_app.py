"""A Plotly Dash dashboard whose panel is filled by a callback that waits for slow data.

Run as ``python dash_app.py PORT``."""

import sys
import time

from dash import Dash, Input, Output, html

app = Dash(__name__)
app.layout = html.Div([html.H1("Sales"), html.Div(id="panel", children="Loading...")], id="page")


@app.callback(Output("panel", "children"), Input("page", "id"))
def load_panel(_: str) -> object:
    time.sleep(2.5)  # the slow data source: the app's behaviour under test
    return html.Div(
        id="late-panel", style={"background": "rgb(200,0,0)", "width": "600px", "height": "300px"}
    )


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[1]), debug=False)
