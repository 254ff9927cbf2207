"""`recolor serve`: the local web page (and its HTTP API); the server itself lives in recolor/serve/."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from ..serve import ServeConfig  # stdlib only: --help stays instant
from .app import app, fail, load_colorizer, require_extra
from .options import DeviceOpt


@app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option(
        "--host", help="Address to listen on: 0.0.0.0 shares it on the network (with a token).")] = ServeConfig.host,
    port: Annotated[int, typer.Option("--port", "-p", help="Port (0: any free one).")] = ServeConfig.port,
    model: Annotated[Optional[list[str]], typer.Option("--model", "-m", help=(
        "Model(s) the page offers, the first by default (repeatable): default, a .safetensors file, or "
        "owner/repo[@rev]."))] = None,
    device: DeviceOpt = "auto",
    token: Annotated[Optional[str], typer.Option("--token", help=(
        "Required on every API call (the printed address carries it). Default: none on 127.0.0.1, a random one "
        "otherwise."))] = None,
    max_upload_mb: Annotated[float, typer.Option(
        "--max-upload-mb", help="Largest photo upload (with its reference photo).")] = ServeConfig.max_upload_mb,
    max_film_mb: Annotated[float, typer.Option("--max-film-mb", help="Largest film upload.")] = ServeConfig.max_film_mb,
    max_pixels: Annotated[int, typer.Option(
        "--max-pixels", min=1, help="Refuse photos larger than this many pixels.")] = ServeConfig.max_pixels,
    allow_origin: Annotated[Optional[list[str]], typer.Option("--allow-origin", help=(
        "Let pages of this other site use the API, e.g. http://localhost:3000 (repeatable); others get 403."))] = None,
) -> None:
    """A local web page for colorizing photos and films in a browser (and its HTTP API); prints its address."""
    require_extra("serve", "fastapi", "uvicorn")
    from ..serve import ServeError, listen, run
    try:
        config = ServeConfig(host, port, token, max_upload_mb, max_film_mb, max_pixels,
                             allow_origins=tuple(allow_origin or ()))
        sock = listen(host, port)  # before the models load: a taken port fails in a blink
    except (ValueError, ServeError) as e:
        fail(str(e))
    colorizers = {name: load_colorizer(name, device, "auto") for name in dict.fromkeys(model or ["default"])}
    run(config, sock, colorizers)
