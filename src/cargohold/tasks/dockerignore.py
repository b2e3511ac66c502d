"""`.dockerignore` as Docker reads it: one pattern a line, `#` comments, `!` re-includes, `**` spans
directories, and a pattern that matches a directory excludes everything under it. The last matching line wins.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from pathlib import Path


def _translate(pattern: str) -> re.Pattern[str]:
    out, index = [], 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**", index):
            index += 2
            if pattern.startswith("/", index):
                index += 1
                out.append("(?:.*/)?")
            else:
                out.append(".*")
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.find("]", index + 1)
            if end == -1:
                out.append(re.escape(char))
            else:
                body = pattern[index + 1:end]
                if body.startswith(("!", "^")):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                index = end
        elif char == "\\" and index + 1 < len(pattern):
            index += 1
            out.append(re.escape(pattern[index]))
        else:
            out.append(re.escape(char))
        index += 1
    return re.compile("".join(out) + r"(?:/.*)?\Z")


@dataclass(frozen=True)
class Rule:
    pattern: str
    regex: re.Pattern[str]
    exclude: bool


@dataclass(frozen=True)
class IgnoreRules:
    rules: tuple[Rule, ...] = ()

    @classmethod
    def parse(cls, text: str) -> IgnoreRules:
        rules = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            exclude = not line.startswith("!")
            line = line.lstrip("!").strip()
            cleaned = posixpath.normpath(line).lstrip("/")
            if cleaned in ("", "."):
                continue
            rules.append(Rule(cleaned, _translate(cleaned), exclude))
        return cls(tuple(rules))

    @classmethod
    def load(cls, directory: Path) -> IgnoreRules:
        path = directory / ".dockerignore"
        return cls.parse(path.read_text(errors="replace")) if path.is_file() else cls()

    def ignored(self, relative: str) -> bool:
        verdict = False
        for rule in self.rules:
            if rule.regex.match(relative):
                verdict = rule.exclude
        return verdict

    def may_reinclude_under(self, directory: str) -> bool:
        """Whether some `!` line could bring back a path under an excluded directory (then walk into it)."""
        return any(not rule.exclude and (rule.pattern.startswith(directory + "/") or "*" in rule.pattern)
                   for rule in self.rules)
