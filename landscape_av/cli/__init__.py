"""The `landscape-av` command: a click group whose sub-commands live one family per module."""

import click


@click.group()
@click.version_option(package_name="landscape-av")
def main() -> None:
    """Build, inspect and publish the Landscape audio-video corpus."""
