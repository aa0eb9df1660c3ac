"""The `swapface` command line: one Typer app assembled from small command modules."""
