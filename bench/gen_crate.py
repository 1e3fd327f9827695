"""Write a std-only Cargo workspace big enough that a cold build takes tens of seconds.

`python bench/gen_crate.py DIR [CRATES] [FUNCTIONS]`. Several library crates (so
cargo compiles in parallel and sccache has one entry per crate) and a binary
that uses them all. Deterministic: the same arguments give the same bytes.
"""

from __future__ import annotations

import sys
from pathlib import Path

FUNCTION = """
pub fn f{i}(input: &[u64]) -> u64 {{
    let v: Vec<u64> = input.iter().map(|x| x.wrapping_mul({a}).rotate_left({r})).filter(|x| x % {m} != 1).collect();
    let mut map = std::collections::BTreeMap::new();
    for (k, x) in v.iter().enumerate() {{
        *map.entry(x % {m}).or_insert(0u64) += (k as u64) ^ {a};
    }}
    let s: String = map.iter().map(|(k, v)| format!("{{}}:{{}};", k, v)).collect();
    match s.len() % 4 {{
        0 => s.bytes().map(u64::from).sum::<u64>(),
        1 => map.values().copied().max().unwrap_or({a}),
        2 => v.iter().rev().take({r}).fold({m}, |acc, x| acc.wrapping_add(*x)),
        _ => Wrapper::<u64>::new(v.len() as u64).twice().0,
    }}
}}
"""

HEADER = """
#[derive(Debug, Clone, PartialEq)]
pub struct Wrapper<T>(pub T);
impl<T: Clone + std::ops::Add<Output = T>> Wrapper<T> {
    pub fn new(t: T) -> Self { Wrapper(t) }
    pub fn twice(&self) -> Self { Wrapper(self.0.clone() + self.0.clone()) }
}
"""


def generate(root: Path, crates: int = 8, functions: int = 250) -> Path:
    members = [f"lib{c}" for c in range(crates)]
    (root / "app" / "src").mkdir(parents=True, exist_ok=True)
    (root / "Cargo.toml").write_text(
        '[workspace]\nresolver = "2"\nmembers = [' + ", ".join(f'"{m}"' for m in [*members, "app"]) + "]\n"
    )
    for c, member in enumerate(members):
        src = root / member / "src"
        src.mkdir(parents=True, exist_ok=True)
        (root / member / "Cargo.toml").write_text(
            f'[package]\nname = "{member}"\nversion = "0.1.0"\nedition = "2021"\n'
        )
        body = [HEADER]
        for i in range(functions):
            body.append(FUNCTION.format(i=i, a=(c * 7919 + i * 104729) % 1_000_003 + 3,
                                        r=(i % 13) + 1, m=(i % 17) + 3))
        body.append("pub fn all(input: &[u64]) -> u64 {\n    0"
                    + "".join(f"\n    ^ f{i}(input)" for i in range(functions)) + "\n}\n")
        (src / "lib.rs").write_text("".join(body))
    deps = "".join(f'{m} = {{ path = "../{m}" }}\n' for m in members)
    (root / "app" / "Cargo.toml").write_text(
        f'[package]\nname = "app"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\n{deps}'
    )
    calls = "".join(f"    println!(\"{m}: {{}}\", {m}::all(&input));\n" for m in members)
    (root / "app" / "src" / "main.rs").write_text(
        f"fn main() {{\n    let input: Vec<u64> = (1..1000).collect();\n{calls}}}\n"
    )
    return root


if __name__ == "__main__":
    args = sys.argv[1:]
    generate(Path(args[0]), *(int(a) for a in args[1:3]))
