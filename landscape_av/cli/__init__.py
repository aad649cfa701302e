"""The `landscape-av` command: a click group whose sub-commands live one family per module."""

import click


@click.group()
@click.version_option(package_name="landscape-av")
def main() -> None:
    """Build, inspect and publish the Landscape audio-video corpus."""


from landscape_av.cli.sources import manifest_alias, sources_group  # noqa: E402

main.add_command(sources_group)
main.add_command(manifest_alias)

from landscape_av.cli.build import build_command  # noqa: E402

main.add_command(build_command)

from landscape_av.cli.corpus import COMMANDS as _corpus_commands  # noqa: E402

for _command in _corpus_commands:
    main.add_command(_command)

from landscape_av.cli.view import view_command  # noqa: E402

main.add_command(view_command)
