"""CLI commands of the serving layer (create, serve, run-local). Import-light by contract."""

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the serving commands to the top-level `emberflow` app."""

    @app.command()
    def create(
        name: str = typer.Option(..., "--name", "-n", help="Project and unit kind name (lower_case)."),
        path: Path = typer.Option(Path("."), "--path", "-p", help="Directory to create the project in."),
    ) -> None:
        """Scaffold a wrapper project: a unit class with typed params and bodies, sample data, README, test."""
        from emberflow.serving.scaffold import create_project

        try:
            root = create_project(name, path)
        except (ValueError, FileExistsError) as e:
            typer.echo(f"emberflow create: {e}", err=True)
            raise typer.Exit(2) from e
        typer.echo(
            f"created {root}\n  cd {root} && python -m pytest tests && emberflow run-local . && emberflow serve ."
        )

    @app.command("run-local")
    def run_local(
        path: Path = typer.Argument(Path("."), help="The wrapper project directory."),
        stream: bool = typer.Option(False, help="Ask for streamed output (response_format *.stream)."),
    ) -> None:
        """Run the project's unit once on sample/ without a server and validate the result."""
        from emberflow.serving.local_run import run_local as run

        raise typer.Exit(run(path.resolve(), stream=stream))

    @app.command()
    def serve(
        target: str = typer.Argument(..., help="A wrapper project directory, or a unit kind (e.g. llm)."),
        host: str | None = typer.Option(None, help="TCP bind address (default 127.0.0.1)."),
        port: int | None = typer.Option(None, help="StackFlow TCP port (default 10001; 0 = any free port)."),
        http_port: int | None = typer.Option(None, help="HTTP port (default 8080; 0 = any free port)."),
        grpc_port: int | None = typer.Option(None, help="gRPC port (default 8001; 0 = any free port)."),
        model_repository: Path | None = typer.Option(None, help="KServe model repository directory."),
        token: str | None = typer.Option(None, envvar="EMBERFLOW_TOKEN", help="API key / sys.auth token."),
    ) -> None:
        """Serve a wrapper project (or a catalogue unit) over every gateway: StackFlow TCP, HTTP, gRPC."""
        import os
        import sys

        from emberflow.sys.config import load_config
        from emberflow.sys.daemon import run_daemon

        path = Path(target)
        config = path / "emberflow.yaml" if path.is_dir() else None
        if config is not None and not config.is_file():
            typer.echo(
                f"emberflow serve: {config} not found (make a project with `emberflow create -n NAME`)", err=True
            )
            raise typer.Exit(2)
        cfg = load_config(
            config,
            host=host,
            port=port,
            token=token,
            http_port=http_port,
            grpc_port=grpc_port,
            model_repository=str(model_repository) if model_repository else None,
        )
        if config is not None:
            root = str(path.resolve())
            # unit processes import the project's module: put the project on their path
            os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
            sys.path.insert(0, root)  # and the gateway, which reads the unit's schema for its routes
            cfg.preload = list(dict.fromkeys([*cfg.preload, *cfg.units]))
        else:
            cfg.preload = list(dict.fromkeys([*cfg.preload, target]))
        run_daemon(cfg)
