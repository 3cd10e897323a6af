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
    group: str | None  # None only for a compound of two groups (Lexicon.compound)
    synonyms: tuple[str, ...]

    def spellings(self) -> tuple[str, ...]:
        return (self.key, self.zh, self.en, *self.synonyms)


# The shortest part of a compound code (see Lexicon.compound): one character would split too much (茶叶蛋, tea eggs,
# is not 茶叶 + 蛋), so a one-character term counts only in a code of two one-character terms (烟酒 = 烟 + 酒).
MIN_PART_CHARACTERS = 2


@dataclass(frozen=True)
class Lexicon:
    """The entries of one section (categories or payments) and the index of their normalised spellings."""
    terms: dict[str, Term]
    index: dict[str, str]  # normalised spelling -> key
    compounds: bool = False  # whether a code made of two known spellings resolves (categories do)

    def resolve(self, code: str | None) -> Term | None:
        if code is None:
            return None
        spelling = normalize(code)
        key = self.index.get(spelling)
        if key:
            return self.terms[key]
        return self.compound(spelling) if self.compounds else None

    def compound(self, spelling: str) -> Term | None:
        """A department named by two known terms, in any order (蔬菜水果 = 蔬菜 + 水果, 肉禽蛋品 = 肉禽 + 蛋品,
        烟酒 = 烟 + 酒): a term whose labels join the two ("vegetables & fruit"), in their group when they share one,
        else in none (its lifts then count towards no archetype group). None unless exactly one split works."""
        found = []
        for cut in range(1, len(spelling)):
            head, tail = spelling[:cut], spelling[cut:]
            short = min(len(head), len(tail)) < MIN_PART_CHARACTERS and len(spelling) > 2
            parts = [self.terms[self.index[p]] for p in (head, tail) if p in self.index]
            if len(parts) == 2 and not short and parts[0].key != parts[1].key:
                found.append(parts)
        if len(found) != 1:
            return None
        first, second = found[0]
        group = first.group if first.group == second.group else None
        # "vegetables & fruit", but "cakes & pastries, bread" rather than a second "&".
        joint = ", " if "&" in first.en + second.en else " & "
        return Term(f"{first.key}+{second.key}", f"{first.zh}、{second.zh}", f"{first.en}{joint}{second.en}", group,
                    ())


@dataclass(frozen=True)
class Vocabulary:
    groups: dict[str, tuple[str, str]]  # group -> (zh, en)
    categories: Lexicon
    payments: Lexicon


def _lexicon(section: dict, source: Path, groups: dict | None, compounds: bool = False) -> Lexicon:
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
    return Lexicon(terms, index, compounds)


@cache
def load_vocabulary(path: str | Path = VOCABULARY_FILE) -> Vocabulary:
    """The vocabulary in `path`, read once per process (the built-in file never changes while it runs)."""
    source = Path(path)
    text = ""
    try:
        text = source.read_text(encoding="utf-8")
        document = yaml.safe_load(text) or {}
        groups = {name: (str(zh), str(en)) for name, (zh, en) in document["groups"].items()}
        return Vocabulary(groups, _lexicon(document["categories"], source, groups, compounds=True),
                          _lexicon(document["payments"], source, None))
    except yaml.YAMLError as exc:  # PyYAML's own message spans several lines
        raise ValueError(f"{source}: not valid YAML: {yaml_problem(exc, text)}") from None
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{source}: cannot read the vocabulary ({exc.__class__.__name__}: {exc})") from exc
