//! JSON without null members and without objects left empty, at any depth: absent figures are
//! absent, not null. Array elements are written as they are (`[]`, `null` and `{}` included).
//!
//! Written straight from `Serialize`, with no `Value` tree in between: a member's key and an
//! object's `{` go out at once, and are cut off again when what follows them turns out to be
//! null (a `None`, a non-finite float) or an object with nothing kept in it.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::ser::{CharEscape, CompactFormatter, Formatter};

/// Appends `v` to `out`. On an error, `out` holds part of it.
pub fn write<T: Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) -> serde_json::Result<()> {
    let strip = Strip {
        out,
        open: Vec::with_capacity(8),
        key_at: 0,
        in_key: false,
    };
    let mut ser = serde_json::Serializer::with_formatter(io::sink(), strip);
    v.serialize(&mut ser)
}

/// Writes into `out` itself rather than into the serializer's writer, which is a sink: `out`
/// can be cut back.
struct Strip<'a> {
    out: &'a mut Vec<u8>,
    /// The objects and arrays open, innermost last.
    open: Vec<Open>,
    /// Where the current member (its comma and key) starts in `out`.
    key_at: usize,
    /// A key is being written: its pieces are no value.
    in_key: bool,
}

struct Open {
    array: bool,
    /// Something in it is kept: the next member or element needs a comma.
    kept: bool,
    /// Where to cut `out` back to when it ends with nothing kept; `None` for arrays and for
    /// objects that stay anyway (in an array, or the outermost value).
    cut: Option<usize>,
}

impl Strip<'_> {
    fn in_object(&self) -> bool {
        self.open.last().is_some_and(|o| !o.array)
    }

    /// A value is written (not a key): it and everything around it stays.
    fn keep(&mut self) {
        if self.in_key {
            return;
        }
        // Once an enclosing level is kept, all levels outside it are too.
        for o in self.open.iter_mut().rev() {
            if o.kept {
                break;
            }
            o.kept = true;
        }
    }
}

/// Values and string pieces (a key's too), written as the compact formatter writes them.
macro_rules! values {
    ($($name:ident($($arg:ident: $t:ty),*);)*) => {$(
        fn $name<W: ?Sized + Write>(&mut self, _: &mut W $(, $arg: $t)*) -> io::Result<()> {
            self.keep();
            CompactFormatter.$name(&mut *self.out $(, $arg)*)
        }
    )*};
}

impl Formatter for Strip<'_> {
    values! {
        write_bool(v: bool);
        write_i8(v: i8);
        write_i16(v: i16);
        write_i32(v: i32);
        write_i64(v: i64);
        write_i128(v: i128);
        write_u8(v: u8);
        write_u16(v: u16);
        write_u32(v: u32);
        write_u64(v: u64);
        write_u128(v: u128);
        write_f32(v: f32);
        write_f64(v: f64);
        write_number_str(v: &str);
        begin_string();
        end_string();
        write_string_fragment(v: &str);
        write_char_escape(v: CharEscape);
        write_raw_fragment(v: &str);
    }

    fn write_null<W: ?Sized + Write>(&mut self, _: &mut W) -> io::Result<()> {
        if self.in_object() {
            self.out.truncate(self.key_at);
            return Ok(());
        }
        self.keep();
        self.out.write_all(b"null")
    }

    fn begin_array<W: ?Sized + Write>(&mut self, _: &mut W) -> io::Result<()> {
        self.keep();
        self.open.push(Open {
            array: true,
            kept: false,
            cut: None,
        });
        self.out.write_all(b"[")
    }

    fn end_array<W: ?Sized + Write>(&mut self, _: &mut W) -> io::Result<()> {
        self.open.pop();
        self.out.write_all(b"]")
    }

    fn begin_array_value<W: ?Sized + Write>(&mut self, _: &mut W, _: bool) -> io::Result<()> {
        if self.open.last().is_some_and(|o| o.kept) {
            self.out.push(b',');
        }
        Ok(())
    }

    fn begin_object<W: ?Sized + Write>(&mut self, _: &mut W) -> io::Result<()> {
        let cut = if self.in_object() {
            Some(self.key_at)
        } else {
            self.keep();
            None
        };
        self.open.push(Open {
            array: false,
            kept: false,
            cut,
        });
        self.out.write_all(b"{")
    }

    fn end_object<W: ?Sized + Write>(&mut self, _: &mut W) -> io::Result<()> {
        match self.open.pop() {
            Some(Open {
                kept: false,
                cut: Some(at),
                ..
            }) => {
                self.out.truncate(at);
                Ok(())
            }
            _ => self.out.write_all(b"}"),
        }
    }

    // serde_json's `first` counts the members it was given, not those kept.
    fn begin_object_key<W: ?Sized + Write>(&mut self, _: &mut W, _: bool) -> io::Result<()> {
        self.key_at = self.out.len();
        self.in_key = true;
        if self.open.last().is_some_and(|o| o.kept) {
            self.out.push(b',');
        }
        Ok(())
    }

    fn end_object_key<W: ?Sized + Write>(&mut self, _: &mut W) -> io::Result<()> {
        self.in_key = false;
        Ok(())
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, _: &mut W) -> io::Result<()> {
        self.out.push(b':');
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{json, Value};

    use super::write;

    /// How `Value` trees were stripped before.
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.values_mut().for_each(strip);
                m.retain(|_, v| {
                    !(v.is_null() || v.as_object().is_some_and(serde_json::Map::is_empty))
                });
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }

    /// The same bytes as the stripped tree (members in the same order, so compared as text).
    fn same_as_stripped(v: &Value) -> Result<(), TestCaseError> {
        let mut out = b"prefix".to_vec();
        write(&mut out, v).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut want = v.clone();
        strip(&mut want);
        let want = serde_json::to_string(&want).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(
            std::str::from_utf8(&out[6..]).ok(),
            Some(want.as_str()),
            "{}",
            v
        );
        Ok(())
    }

    #[test]
    fn as_a_stripped_value_tree() {
        for v in [
            json!({}),
            json!(null),
            json!([]),
            json!({ "a": null }),
            json!({ "a": {}, "b": { "c": null, "d": { "e": null } } }),
            json!({ "a": null, "b": 1, "c": null, "d": { "x": null }, "e": "s" }),
            json!({ "a": { "b": null }, "c": { "d": null } }),
            json!({ "k\"ey": [null, {}, { "a": null }, [], [null, 1]], "z": null }),
            json!([{ "a": null }, null, { "b": { "c": null } }, 0.5]),
            json!({ "a": { "b": { "c": { "d": 1, "e": null } } }, "f": { "g": {} } }),
            json!({ "a": [], "b": false, "c": 0, "d": "", "e": -1 }),
        ] {
            same_as_stripped(&v).unwrap();
        }
    }

    fn tree() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            3 => Just(Value::Null),
            1 => any::<bool>().prop_map(Value::from),
            1 => any::<i64>().prop_map(Value::from),
            1 => any::<f64>().prop_map(Value::from),
            1 => "[a\"\\\n\u{e9}]{0,3}".prop_map(Value::from),
        ];
        leaf.prop_recursive(5, 64, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::from),
                prop::collection::btree_map("[a-d]", inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_tree_as_a_stripped_value_tree(v in tree()) {
            same_as_stripped(&v)?;
        }
    }

    #[derive(serde::Serialize)]
    struct S {
        a: f64,
        b: Option<u8>,
        c: f64,
    }

    #[test]
    fn non_finite_floats_are_null() {
        let mut out = Vec::new();
        write(&mut out, &(f64::NAN, [f64::INFINITY])).unwrap();
        assert_eq!(out, b"[null,[null]]");
        out.clear();
        let s = S {
            a: f64::NAN,
            b: None,
            c: 1.5,
        };
        write(&mut out, &s).unwrap();
        assert_eq!(out, br#"{"c":1.5}"#);
    }
}
