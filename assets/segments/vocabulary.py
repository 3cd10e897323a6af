"""The built-in bilingual retail vocabulary (vocabulary.yaml): what a shop's category and payment codes mean.

A shop names its categories as it likes (生鲜肉类, freshmeat, "Fresh Meat", ＦＲＥＳＨ＿ＭＥＡＴ); `resolve` finds the
entry they mean by comparing a normalised spelling (`normalize`) with every entry's key, labels and synonyms. The
entry gives the zh and en labels segment names are built from and the group archetype rules are written on, so
the same rule fits a Chinese and an English shop.
"""

import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from pipelines.core.config import yaml_problem

VOCABULARY_FILE = Path(__file__).with_name("vocabulary.yaml")

# Characters that only separate words: "fresh meat", "fresh_meat", "fresh-meat" and "fruit & veg" / "fruitveg"
# are the same spelling. Full-width forms are folded first (NFKC), so "＿" and "　" go too.
_SEPARATORS = re.compile(r"[\s_\-&/·、,，.]+")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]")


def normalize(text: str) -> str:
    """The spelling codes are compared by: full-width folded, case-insensitive, separators ignored."""
    return _SEPARATORS.sub("", unicodedata.normalize("NFKC", str(text)).casefold())


def has_cjk(text: str) -> bool:
    return bool(_CJK.search(text))


@dataclass(frozen=True)
class Term:
    key: str
    zh: str
    en: str
    group: str
    synonyms: tuple[str, ...]

    def spellings(self) -> tuple[str, ...]:
        return (self.key, self.zh, self.en, *self.synonyms)


@dataclass(frozen=True)
class Lexicon:
    """The entries of one section (categories or payments) and the index of their normalised spellings."""
    terms: dict[str, Term]
    index: dict[str, str]  # normalised spelling -> key

    def resolve(self, code: str | None) -> Term | None:
        if code is None:
            return None
        key = self.index.get(normalize(code))
        return self.terms[key] if key else None


@dataclass(frozen=True)
class Vocabulary:
    groups: dict[str, tuple[str, str]]  # group -> (zh, en)
    categories: Lexicon
    payments: Lexicon


def _lexicon(section: dict, source: Path, groups: dict | None) -> Lexicon:
    terms, index = {}, {}
    for key, entry in section.items():
        term = Term(key, str(entry["zh"]), str(entry["en"]), str(entry["group"]),
                    tuple(str(s) for s in entry.get("synonyms") or ()))
        if groups is not None and term.group not in groups:
            raise ValueError(f"{source}: {key} names the unknown group {term.group!r}")
        for spelling in term.spellings():
            # One spelling, one meaning: a shop's code must never depend on the order of this file.
            owner = index.setdefault(normalize(spelling), key)
            if owner != key:
                raise ValueError(f"{source}: {spelling!r} spells both {owner} and {key}")
        terms[key] = term
    return Lexicon(terms, index)


@cache
def load_vocabulary(path: str | Path = VOCABULARY_FILE) -> Vocabulary:
    """The vocabulary in `path`, read once per process (the built-in file never changes while it runs)."""
    source = Path(path)
    text = ""
    try:
        text = source.read_text(encoding="utf-8")
        document = yaml.safe_load(text) or {}
        groups = {name: (str(zh), str(en)) for name, (zh, en) in document["groups"].items()}
        return Vocabulary(groups, _lexicon(document["categories"], source, groups),
                          _lexicon(document["payments"], source, None))
    except yaml.YAMLError as exc:  # PyYAML's own message spans several lines
        raise ValueError(f"{source}: not valid YAML: {yaml_problem(exc, text)}") from None
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{source}: cannot read the vocabulary ({exc.__class__.__name__}: {exc})") from exc
