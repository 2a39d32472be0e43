"""MkDocs hook: the CLI reference is written from the Typer app at build time, so it says what `--help` says.

A page holding the marker `<!-- cli-reference -->` gets, in its place, one section per command: its help
text, its usage line and a table of its arguments and options, each row the (names, help) pair that click
prints under `--help`. Only avaudit.cli is imported (it imports no torch, numpy or pandas until a command
runs), so the docs build needs neither.
"""
from __future__ import annotations

import html

import typer

MARKER = "<!-- cli-reference -->"


def parameter_table(command, context) -> str:
    """An HTML table of the (names, help) records click prints, so `|` and `<...>` need no markdown escapes."""
    rows = []
    for parameter in command.get_params(context):
        record = parameter.get_help_record(context)
        if record is None:  # hidden
            continue
        names, text = record
        rows.append(f"<tr><td><code>{html.escape(names)}</code></td><td>{html.escape(text)}</td></tr>")
    return ("<table>\n<thead><tr><th>argument or option</th><th>meaning [default]</th></tr></thead>\n<tbody>\n"
            + "\n".join(rows) + "\n</tbody>\n</table>")


def command_section(name: str, command, parent) -> str:
    context = command.make_context(name, [], parent=parent, resilient_parsing=True)
    usage = command.get_usage(context).removeprefix("Usage: ")
    return "\n\n".join([f"## `avaudit {name}`", (command.help or "").strip(), f"```text\n{usage}\n```",
                        parameter_table(command, context)])


def cli_reference() -> str:
    """Markdown for every command of avaudit.cli.app, in the order `avaudit --help` lists them."""
    from avaudit.cli import app

    group = typer.main.get_command(app)
    context = group.make_context("avaudit", [], resilient_parsing=True)
    sections = [(group.help or "").strip(), f"```text\n{group.get_usage(context).removeprefix('Usage: ')}\n```",
                parameter_table(group, context)]
    for name in group.list_commands(context):
        sections.append(command_section(name, group.get_command(context, name), context))
    return "\n\n".join(sections)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, cli_reference())
