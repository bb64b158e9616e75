"""``kdbench models``: list the registered teacher and students with parameters, MACs and size."""

from __future__ import annotations

import typer

from kdbench.cli.options import complete_student


def command(
    size: int = typer.Option(112, "--size", min=8, help="Square input size in pixels used to count MACs."),
    num_classes: int = typer.Option(4, "--num-classes", min=1, help="Classifier outputs (4 views by default)."),
    model: list[str] = typer.Option(
        None,
        "--model",
        "-m",
        autocompletion=complete_student,
        help="Show only this model (repeatable); any torchvision or timm classifier name works too.",
    ),
) -> None:
    """Show every registered teacher/student: parameters, MACs at --size and size in MB (fp32)."""
    import logging

    import torch
    from rich.table import Table

    from kdbench.cli.console import console
    from kdbench.cli.tables import print_table
    from kdbench.models import REGISTRY, create_model, list_models, model_info
    from kdbench.models.registry import model_source

    log = logging.getLogger("kdbench.models")
    names = list(model) if model else list_models()
    table = Table(title=f"kdbench models at {size}x{size} px, batch 1, {num_classes} classes")
    for col, justify in (
        ("model", "left"),
        ("role", "left"),
        ("source", "left"),
        ("params (M)", "right"),
        ("MACs (M)", "right"),
        ("size (MB)", "right"),
    ):
        table.add_column(col, justify=justify, no_wrap=True)
    for i, name in enumerate(names, 1):
        log.info("building %s (%d/%d)", name, i, len(names))
        with torch.device("meta"):  # shapes only: no weight init, no memory, same counts
            info = model_info(create_model(name, num_classes=num_classes), size=size)
        log.debug("%s: %s", name, info)
        spec = REGISTRY.get(name)
        table.add_row(
            name,
            spec.role if spec else "other",
            spec.source if spec else model_source(name),
            f"{info['params'] / 1e6:.3f}",
            f"{info['macs'] / 1e6:.1f}",
            f"{info['size_mb']:.2f}",
        )
    print_table(table, console)
