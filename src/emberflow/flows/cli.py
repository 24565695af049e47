"""CLI commands of flows and demos. Import-light by contract."""

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    demo = typer.Typer(help="Try emberflow end to end on real models.", no_args_is_help=True)
    app.add_typer(demo, name="demo")

    @demo.command("voice")
    def voice(
        input: Path | None = typer.Option(None, "--input", "-i", help="A recording: 'Hey Jarvis' + a question (WAV)."),
        output: Path | None = typer.Option(None, "--output", "-o", help="Write the spoken answer here (WAV)."),
        flow: str = typer.Option("voice-assistant", help="Flow name or YAML file."),
        speed: float = typer.Option(1.0, help="Feed the recording at this multiple of real time."),
    ) -> None:
        """Run the voice assistant on a recording (or the microphone): transcript, answer, latency."""
        from emberflow.flows.demo import run_voice_demo

        raise typer.Exit(run_voice_demo(input, output, flow, speed))

    @demo.command("vision")
    def vision(
        input: Path = typer.Option(..., "--input", "-i", help="A photo (JPEG/PNG) or a video file."),
        output: Path | None = typer.Option(
            None, "--output", "-o", help="Write the annotated image (or .avi video) here."
        ),
        model: str = typer.Option("yolo11n", help="Detector: yolo11n (NanoDet), yolo11n-pose, blazeface."),
        question: str = typer.Option("Describe the image.", help="What to ask the vlm about it."),
        every: int = typer.Option(1, help="Video: detect on every n-th frame."),
    ) -> None:
        """Detections and a grounded description of a photo or video, and the annotated image."""
        from emberflow.flows.vision_demo import run_vision_demo

        raise typer.Exit(run_vision_demo(input, output, model, question, every))

    @app.command("flows")
    def flows() -> None:
        """List the built-in flows."""
        from emberflow.flows.spec import BUILTIN, load

        for path in sorted(BUILTIN.glob("*.yaml")):
            f = load(path)
            typer.echo(f"{f.name:18} {f.description}  ({' -> '.join(u.name for u in f.order())})")
