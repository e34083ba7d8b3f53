"""The upstream sources skbridge can run, one line each.

Everything that depends on which sources exist asks here: the config file's
``[sources]`` tables, the secrets to mask, the daemon's and ``skbridge check``'s
upstreams, the fix hints. Adding a source is its module (which declares its
:class:`~skbridge.upstreams.Source`), one line below, and its tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from skbridge.ids import SourceName
from skbridge.upstreams import Services, Source, Upstream, mail, telegram

if TYPE_CHECKING:
    from skbridge.config_types import Section

SOURCES: tuple[Source, ...] = (telegram.KIND, mail.KIND)


def by_name(name: str) -> Source | None:
    return next((source for source in SOURCES if source.name == name), None)


def configured(sources: Section) -> list[tuple[Source, Any]]:
    """The registered sources that have a table in this config, with that table."""
    found = [(source, getattr(sources, source.name, None)) for source in SOURCES]
    return [(source, section) for source, section in found if section is not None]


def build(sources: Section, services: Services) -> dict[SourceName, Upstream]:
    """Every configured upstream, by its source name."""
    built = [source.build(section, services) for source, section in configured(sources)]
    return {upstream.name: upstream for upstream in built}
