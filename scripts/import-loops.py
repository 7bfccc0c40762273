#!/usr/bin/env python3
"""Find import loops among a crate's source files.

Usage: scripts/import-loops.py [CRATE_SRC_DIR ...]   (default: every crate's src/)

Each .rs file is a module (foo.rs and foo/mod.rs are `foo`; foo/bar.rs is `foo::bar`). An
edge A -> B is a path in A's code (a `use` or an inline path) that names B or an item in B:
`crate::…`, `super::…`, `self::…` and a child module's name. Edges from a module to its own
children through `mod` declarations alone are not imports and are not counted; a parent that
uses a child's items does count, as does a child that uses `super::`. Exits 1 when a loop
(a strongly connected set of two or more files) exists, printing each loop and its edges.
"""
import os
import re
import sys


def modules(src):
    mods = {}
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(root, f)
            rel = os.path.relpath(path, src)[:-3].split(os.sep)
            if rel[-1] == "mod":
                rel = rel[:-1]
            if rel == ["main"] and os.path.exists(os.path.join(src, "lib.rs")):
                continue  # a binary beside the library: its own crate, using the library
            if rel in (["lib"], ["main"]):
                rel = []
            if rel and rel[0] == "bin":
                continue
            if rel and rel[0] == "main":
                continue
            mods[tuple(rel)] = path
    return mods


def strip(text):
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r'r#*"(?:.|\n)*?"#*', '""', text)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    return text


def cut_tests(text):
    """Drops inline `#[cfg(test)] mod … { … }` blocks: tests import freely from the module
    they test and are not part of the shape (a `tests.rs` file imports, nothing imports it)."""
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*(?:pub(?:\([\w:]+\))?\s+)?mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i:m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def use_paths(text, children):
    """Every path a file names: expanded `use` trees, inline `crate::`/`super::`/`self::`
    paths, and inline paths that start with one of the file's child modules (`http::router`)."""
    paths = []
    for m in re.finditer(r"\buse\s+([^;]+);", text):
        paths.extend(expand(m.group(1).replace("\n", " ")))
    starts = ["crate", "super", "self"] + sorted(children)
    pattern = r"(?<![\w:])((?:" + "|".join(starts) + r")(?:\s*::\s*\w+)+)"
    for m in re.finditer(pattern, text):
        paths.append([p.strip() for p in m.group(1).split("::")])
    return paths


def expand(tree):
    tree = re.sub(r"\s+", "", tree)
    if tree.startswith("::"):
        tree = tree[2:]
    # split a::b::{c, d::{e}} into lists
    def go(prefix, s):
        res = []
        if "{" not in s:
            for part in split_top(s):
                part = re.sub(r"\bas\w+$", "", part)
                res.append(prefix + [p for p in part.split("::") if p])
            return res
        for part in split_top(s):
            if "{" in part:
                head, rest = part.split("{", 1)
                rest = rest[: rest.rfind("}")]
                res.extend(go(prefix + [p for p in head.split("::") if p], rest))
            else:
                res.extend(go(prefix, part))
        return res
    return go([], tree)


def split_top(s):
    parts, depth, cur = [], 0, ""
    for ch in s:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur:
        parts.append(cur)
    return parts


def resolve(here, path, mods, is_dir_mod):
    """The module a path lands in (the longest existing prefix), or None if outside the crate."""
    if not path:
        return None
    base = list(here)
    # the module a file's `super` refers to: a file module's parent
    if path[0] == "crate":
        base, path = [], path[1:]
    elif path[0] == "super":
        while path and path[0] == "super":
            base = base[:-1]
            path = path[1:]
    elif path[0] == "self":
        path = path[1:]
    else:
        # a bare first segment: a child module of this file, else an external crate
        if tuple(base + [path[0]]) not in mods:
            return None
    full = base + path
    for n in range(len(full), -1, -1):
        if tuple(full[:n]) in mods:
            return tuple(full[:n])
    return None


def graph(src):
    mods = modules(src)
    edges = {m: {} for m in mods}
    for m, path in mods.items():
        text = cut_tests(strip(open(path, encoding="utf-8").read()))
        children = {c[-1] for c in mods if len(c) == len(m) + 1 and c[: len(m)] == m}
        for p in use_paths(text, children):
            t = resolve(m, p, mods, path.endswith("mod.rs"))
            if t is None or t == m:
                continue
            edges[m].setdefault(t, "::".join(p))
    return mods, edges


def sccs(nodes, edges):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(comp)

    sys.setrecursionlimit(10000)
    for v in nodes:
        if v not in index:
            visit(v)
    return [c for c in out if len(c) > 1]


def name(m):
    return "::".join(m) if m else "(crate root)"


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    srcs = sys.argv[1:] or [
        os.path.join(root, c, "src") for c in ("common", "engine", "core", "proxy", "sim")
    ]
    loops = 0
    for src in srcs:
        mods, edges = graph(src)
        # the crate root (lib.rs) composes everything; edges into it are the only loop it can
        # be part of, and they are counted like any other
        for comp in sccs(list(mods), edges):
            loops += 1
            members = set(comp)
            print(f"{src}: loop of {len(comp)} files: " + ", ".join(sorted(name(m) for m in comp)))
            for a in sorted(comp):
                for b, via in sorted(edges[a].items()):
                    if b in members:
                        print(f"    {name(a)} -> {name(b)}   ({via})")
    if loops == 0:
        print("no import loops in " + ", ".join(os.path.relpath(s, root) for s in srcs))
    sys.exit(1 if loops else 0)


if __name__ == "__main__":
    main()
