"""``maxsim train RECIPE.yaml [key=value ...]``: train a model from a recipe, save it with its model card."""

from __future__ import annotations

from pathlib import Path

import typer

from maxsim.cli.common import user_errors
from maxsim.cli.registry import app


@app.command()
def train(
    recipe: Path = typer.Argument(..., exists=True, dir_okay=False, help="A recipe YAML file (see recipes/)."),
    overrides: list[str] = typer.Argument(None, help="key=value overrides, e.g. max_steps=20 output_dir=out/ "
                                                      "loss.temperature=0.5"),
):
    """Train as the recipe says (progress bar, evaluation, checkpoints), then write the model and its
    README.md model card to the recipe's ``output_dir``. Works under ``torchrun`` as well."""
    from maxsim.training.recipe import load_recipe, run_recipe

    with user_errors():
        spec = load_recipe(recipe, overrides or [])
        output = run_recipe(spec)
    typer.echo(f"model and model card written to {output}")
