//! The public API of `collector-core`, recorded in `collector-core/public-api.txt`: a change
//! to it fails here until the listing is written again, so it is a visible decision in the
//! diff (and belongs in CHANGELOG.md). Rewrite it with
//! `UPDATE_PUBLIC_API=1 cargo test -p tests --test public_api`.
//!
//! The listing is read from the source with `syn`: every `pub` item of a public module, the
//! items re-exported from private ones, the public methods of their inherent impls and the
//! traits they implement. Doc comments and bodies are left out; `cfg(feature)` gates stay.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use syn::{Attribute, ImplItem, Item, TraitItem, Visibility};

const UPDATE: &str = "UPDATE_PUBLIC_API=1 cargo test -p tests --test public_api";

/// One item found, before deciding whether it is reachable.
struct Found {
    module: String,
    /// Whether every module on its path is `pub`.
    public_module: bool,
    /// The type or trait it names (impls: the self type), for the reachability rules.
    name: Option<String>,
    kind: Kind,
    text: String,
}

#[derive(PartialEq)]
enum Kind {
    /// A struct, enum, union, trait or type alias.
    Type,
    /// A fn, const, static, module or re-export.
    Other,
    Impl,
}

/// Built for tests only, or `#[doc(hidden)]` (the fuzz targets' entry points): not API.
fn not_api(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|a| {
        let tokens = quote::ToTokens::to_token_stream(&a.meta).to_string();
        (a.path().is_ident("cfg") && tokens.contains("test"))
            || (a.path().is_ident("doc") && tokens.contains("hidden"))
    })
}

/// Doc comments and lint attributes are not API; `cfg` and `derive` are kept.
fn keep_attrs(attrs: &mut Vec<Attribute>) {
    attrs.retain(|a| a.path().is_ident("cfg") || a.path().is_ident("derive"));
}

fn is_pub(v: &Visibility) -> bool {
    matches!(v, Visibility::Public(_))
}

fn unparse(item: Item) -> String {
    prettyplease::unparse(&syn::File {
        shebang: None,
        attrs: Vec::new(),
        items: vec![item],
    })
}

fn empty_block() -> syn::Block {
    syn::parse_quote!({})
}

fn visit_file(file: &Path, module: &str, public: bool, children: &Path, out: &mut Vec<Found>) {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let parsed = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    visit_items(parsed.items, module, public, children, out);
}

fn visit_items(items: Vec<Item>, module: &str, public: bool, dir: &Path, out: &mut Vec<Found>) {
    for item in items {
        let mut found = |name: Option<String>, kind: Kind, item: Item| {
            out.push(Found {
                module: module.to_string(),
                public_module: public,
                name,
                kind,
                text: unparse(item),
            })
        };
        match item {
            Item::Mod(m) if !not_api(&m.attrs) => {
                let name = m.ident.to_string();
                let path = format!("{module}::{name}");
                let child_public = public && is_pub(&m.vis);
                let child_dir = dir.join(&name);
                if child_public {
                    let mut head = m.clone();
                    keep_attrs(&mut head.attrs);
                    head.content = None;
                    head.semi = Some(Default::default());
                    found(None, Kind::Other, Item::Mod(head));
                }
                match m.content {
                    Some((_, items)) => visit_items(items, &path, child_public, &child_dir, out),
                    None => {
                        let flat = dir.join(format!("{name}.rs"));
                        let file = if flat.is_file() {
                            flat
                        } else {
                            child_dir.join("mod.rs")
                        };
                        visit_file(&file, &path, child_public, &child_dir, out);
                    }
                }
            }
            Item::Fn(mut f) if is_pub(&f.vis) && !not_api(&f.attrs) => {
                keep_attrs(&mut f.attrs);
                *f.block = empty_block();
                found(None, Kind::Other, Item::Fn(f));
            }
            Item::Struct(mut s) if is_pub(&s.vis) && !not_api(&s.attrs) => {
                keep_attrs(&mut s.attrs);
                let name = s.ident.to_string();
                let mut private = false;
                let fields: Vec<syn::Field> = s
                    .fields
                    .iter()
                    .filter(|f| {
                        private |= !is_pub(&f.vis);
                        is_pub(&f.vis)
                    })
                    .cloned()
                    .map(|mut f| {
                        keep_attrs(&mut f.attrs);
                        f
                    })
                    .collect();
                match &mut s.fields {
                    syn::Fields::Named(n) => n.named = fields.into_iter().collect(),
                    syn::Fields::Unnamed(u) => u.unnamed = fields.into_iter().collect(),
                    syn::Fields::Unit => {}
                }
                let mut text = unparse(Item::Struct(s));
                if private {
                    text.push_str("// (and private fields)\n");
                }
                out.push(Found {
                    module: module.to_string(),
                    public_module: public,
                    name: Some(name),
                    kind: Kind::Type,
                    text,
                });
            }
            Item::Enum(mut e) if is_pub(&e.vis) && !not_api(&e.attrs) => {
                keep_attrs(&mut e.attrs);
                for v in &mut e.variants {
                    keep_attrs(&mut v.attrs);
                    for f in v.fields.iter_mut() {
                        keep_attrs(&mut f.attrs);
                    }
                }
                found(Some(e.ident.to_string()), Kind::Type, Item::Enum(e));
            }
            Item::Trait(mut t) if is_pub(&t.vis) && !not_api(&t.attrs) => {
                keep_attrs(&mut t.attrs);
                for i in &mut t.items {
                    if let TraitItem::Fn(f) = i {
                        keep_attrs(&mut f.attrs);
                        f.default = None;
                        f.semi_token = Some(Default::default());
                    }
                }
                found(Some(t.ident.to_string()), Kind::Type, Item::Trait(t));
            }
            Item::Type(mut t) if is_pub(&t.vis) && !not_api(&t.attrs) => {
                keep_attrs(&mut t.attrs);
                found(Some(t.ident.to_string()), Kind::Type, Item::Type(t));
            }
            Item::Const(mut c) if is_pub(&c.vis) && !not_api(&c.attrs) => {
                keep_attrs(&mut c.attrs);
                found(Some(c.ident.to_string()), Kind::Other, Item::Const(c));
            }
            Item::Static(mut s) if is_pub(&s.vis) && !not_api(&s.attrs) => {
                keep_attrs(&mut s.attrs);
                found(Some(s.ident.to_string()), Kind::Other, Item::Static(s));
            }
            Item::Use(mut u) if is_pub(&u.vis) && !not_api(&u.attrs) => {
                keep_attrs(&mut u.attrs);
                found(None, Kind::Other, Item::Use(u));
            }
            Item::Impl(mut i) if !not_api(&i.attrs) => {
                let name = match &*i.self_ty {
                    syn::Type::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()),
                    _ => None,
                };
                keep_attrs(&mut i.attrs);
                if i.trait_.is_some() {
                    // The trait it implements is the API, not how.
                    i.items.clear();
                } else {
                    i.items.retain_mut(|it| match it {
                        ImplItem::Fn(f) if is_pub(&f.vis) && !not_api(&f.attrs) => {
                            keep_attrs(&mut f.attrs);
                            f.block = empty_block();
                            true
                        }
                        ImplItem::Const(c) if is_pub(&c.vis) => {
                            keep_attrs(&mut c.attrs);
                            true
                        }
                        _ => false,
                    });
                    if i.items.is_empty() {
                        continue;
                    }
                }
                found(name, Kind::Impl, Item::Impl(i));
            }
            _ => {}
        }
    }
}

/// The names a `pub use` makes public (its leaves, renames included).
fn use_leaves(tree: &syn::UseTree, out: &mut BTreeSet<String>) {
    match tree {
        syn::UseTree::Path(p) => use_leaves(&p.tree, out),
        syn::UseTree::Name(n) => {
            out.insert(n.ident.to_string());
        }
        syn::UseTree::Rename(r) => {
            out.insert(r.ident.to_string());
        }
        syn::UseTree::Group(g) => g.items.iter().for_each(|t| use_leaves(t, out)),
        syn::UseTree::Glob(_) => {}
    }
}

fn listing() -> String {
    let src: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../collector-core/src");
    let mut found = Vec::new();
    visit_file(
        &src.join("lib.rs"),
        "collector_core",
        true,
        &src,
        &mut found,
    );

    // What public modules re-export, by name.
    let mut reexported = BTreeSet::new();
    for f in found.iter().filter(|f| f.public_module) {
        if let Ok(Item::Use(u)) = syn::parse_str::<Item>(&f.text) {
            use_leaves(&u.tree, &mut reexported);
        }
    }
    let reachable =
        |f: &Found| f.public_module || f.name.as_ref().is_some_and(|n| reexported.contains(n));
    let public_types: BTreeSet<String> = found
        .iter()
        .filter(|f| f.kind == Kind::Type && reachable(f))
        .filter_map(|f| f.name.clone())
        .collect();

    // Each module's items together, in source order.
    found.sort_by(|a, b| a.module.cmp(&b.module));
    let mut out = String::new();
    let mut last_module = "";
    for f in &found {
        let keep = match f.kind {
            Kind::Impl => f.name.as_ref().is_some_and(|n| public_types.contains(n)),
            _ => reachable(f),
        };
        if !keep {
            continue;
        }
        if f.module != last_module {
            let _ = writeln!(out, "\n// {}", f.module);
            last_module = &f.module;
        }
        out.push_str(&f.text);
    }
    out.trim_start().to_string()
}

#[test]
fn the_public_api_is_the_recorded_one() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../collector-core/public-api.txt");
    let now = listing();
    if std::env::var_os("UPDATE_PUBLIC_API").is_some() {
        std::fs::write(&path, &now).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    let recorded = std::fs::read_to_string(&path).unwrap_or_default();
    if recorded == now {
        return;
    }
    let was: BTreeSet<&str> = recorded.lines().collect();
    let is: BTreeSet<&str> = now.lines().collect();
    let mut diff = String::new();
    for l in was.difference(&is).take(40) {
        let _ = writeln!(diff, "- {l}");
    }
    for l in is.difference(&was).take(40) {
        let _ = writeln!(diff, "+ {l}");
    }
    panic!(
        "the public API of collector-core is not the one recorded in {}:\n{diff}\nIf the \
         change is meant, record it with `{UPDATE}`, commit the file and say it in \
         CHANGELOG.md.",
        path.display()
    );
}
