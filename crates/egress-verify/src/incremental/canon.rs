//! The canonical bytes of a model item: its serde form without spans, with every id it
//! names recorded as a reference.
//!
//! Serde drives it, so a field added to the model is part of every fingerprint without
//! anyone remembering to add it (a forgotten field would make a stale proof look fresh).
//! Spans are left out (`Span` structs write nothing): an edit that only moves an item
//! keeps its fingerprint. Ids are written as their numbers and recorded, so the caller
//! can fold in the fingerprints of the items they name.
//!
//! The form is compact and injective for values of one type (the caller hashes the
//! item's kind with it): a tag per value, integers and lengths as LEB128, fields in
//! declaration order without their names (a skipped field writes its name), enum
//! variants by index.

use serde::ser::{self, Serialize};

/// The kinds of item an id can name (the newtype names of `egress_check`'s ids).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Kind {
    Dest,
    Cap,
    Agent,
    Workflow,
    Exception,
    Authority,
    Zone,
    DataClass,
    SyscallGroup,
    CapSet,
    Assert,
}

impl Kind {
    fn of(newtype: &str) -> Option<Kind> {
        Some(match newtype {
            "DestId" => Kind::Dest,
            "CapId" => Kind::Cap,
            "AgentId" => Kind::Agent,
            "WorkflowId" => Kind::Workflow,
            "ExceptionId" => Kind::Exception,
            "AuthorityId" => Kind::Authority,
            "ZoneId" => Kind::Zone,
            "DataClassId" => Kind::DataClass,
            "SyscallGroupId" => Kind::SyscallGroup,
            "CapSetId" => Kind::CapSet,
            "AssertId" => Kind::Assert,
            _ => return None,
        })
    }
}

/// An item's canonical bytes and the items it names.
#[derive(Default)]
pub(crate) struct Canonical {
    pub bytes: Vec<u8>,
    pub refs: Vec<(Kind, u32)>,
}

/// The canonical form of `value`.
#[cfg(test)]
pub(crate) fn canonical<T: Serialize + ?Sized>(value: &T) -> Canonical {
    let mut out = Canonical::default();
    canonical_into(value, &mut out);
    out
}

/// Writes the canonical form of `value` into `out`, emptied first (so one buffer serves
/// many values).
pub(crate) fn canonical_into<T: Serialize + ?Sized>(value: &T, out: &mut Canonical) {
    out.bytes.clear();
    out.refs.clear();
    let mut ser = Canon {
        out: std::mem::take(out),
        pending: None,
    };
    // The serializer itself never fails; an error could only come from a `Serialize`
    // impl, and then the bytes written so far plus a marker still identify the value.
    if value.serialize(&mut ser).is_err() {
        ser.out.bytes.extend_from_slice(b"\xffserialize-error");
    }
    *out = ser.out;
}

struct Canon {
    out: Canonical,
    /// Set while the inner value of an id newtype is written: its kind.
    pending: Option<Kind>,
}

#[derive(Debug)]
pub(crate) struct Error(String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

impl Canon {
    fn tag(&mut self, t: u8) {
        self.out.bytes.push(t);
    }
    fn len(&mut self, n: usize) {
        self.varint(n as u64);
    }
    fn varint(&mut self, mut v: u64) {
        loop {
            let low = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.out.bytes.push(low);
                return;
            }
            self.out.bytes.push(low | 0x80);
        }
    }
    fn text(&mut self, s: &str) {
        self.len(s.len());
        self.out.bytes.extend_from_slice(s.as_bytes());
    }
}

/// A compound value being written; `skip` for the inside of a `Span`.
pub(crate) struct Compound<'a> {
    ser: &'a mut Canon,
    skip: bool,
}

impl<'a> ser::Serializer for &'a mut Canon {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = Compound<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Compound<'a>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.tag(1);
        self.tag(u8::from(v));
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        self.tag(2);
        // Zig-zag, so small negative numbers stay short.
        self.varint(((v << 1) ^ (v >> 63)) as u64);
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        if let Some(kind) = self.pending.take() {
            self.out.refs.push((kind, v));
        }
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        self.tag(3);
        self.varint(v);
        Ok(())
    }
    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        self.tag(4);
        self.out.bytes.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }
    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        self.tag(5);
        self.out.bytes.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.serialize_f64(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        self.tag(6);
        self.out.bytes.extend_from_slice(&v.to_bits().to_le_bytes());
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.tag(7);
        self.out
            .bytes
            .extend_from_slice(&u32::from(v).to_le_bytes());
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.tag(8);
        self.text(v);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        self.tag(9);
        self.len(v.len());
        self.out.bytes.extend_from_slice(v);
        Ok(())
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.tag(10);
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        self.tag(11);
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.tag(12);
        Ok(())
    }
    fn serialize_unit_struct(self, name: &'static str) -> Result<(), Error> {
        let _ = name;
        self.tag(13);
        Ok(())
    }
    fn serialize_unit_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        let _ = (name, variant);
        self.tag(14);
        self.len(index as usize);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.tag(15);
        self.pending = Kind::of(name);
        let result = value.serialize(&mut *self);
        self.pending = None;
        result
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        let _ = (name, variant);
        self.tag(16);
        self.len(index as usize);
        value.serialize(self)
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Compound<'a>, Error> {
        self.tag(17);
        // A sequence without a known length is closed by an end tag instead.
        self.len(len.map_or(u64::MAX as usize, |n| n));
        Ok(Compound {
            ser: self,
            skip: false,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<Compound<'a>, Error> {
        self.tag(18);
        self.len(len);
        Ok(Compound {
            ser: self,
            skip: false,
        })
    }
    fn serialize_tuple_struct(self, name: &'static str, len: usize) -> Result<Compound<'a>, Error> {
        let _ = name;
        self.tag(19);
        self.len(len);
        Ok(Compound {
            ser: self,
            skip: false,
        })
    }
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Compound<'a>, Error> {
        let _ = (name, variant);
        self.tag(20);
        self.len(index as usize);
        self.len(len);
        Ok(Compound {
            ser: self,
            skip: false,
        })
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Compound<'a>, Error> {
        self.tag(21);
        self.len(len.map_or(u64::MAX as usize, |n| n));
        Ok(Compound {
            ser: self,
            skip: false,
        })
    }
    fn serialize_struct(self, name: &'static str, len: usize) -> Result<Compound<'a>, Error> {
        // Where an item was written is not what it means.
        if name == "Span" {
            return Ok(Compound {
                ser: self,
                skip: true,
            });
        }
        self.tag(22);
        self.len(len);
        Ok(Compound {
            ser: self,
            skip: false,
        })
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Compound<'a>, Error> {
        let _ = (name, variant);
        self.tag(23);
        self.len(index as usize);
        self.len(len);
        Ok(Compound {
            ser: self,
            skip: false,
        })
    }
}

impl Compound<'_> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        if self.skip {
            return Ok(());
        }
        value.serialize(&mut *self.ser)
    }
    fn field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), Error> {
        let _ = key;
        if self.skip {
            return Ok(());
        }
        value.serialize(&mut *self.ser)
    }
    fn end(self) -> Result<(), Error> {
        if !self.skip {
            self.ser.tag(24);
        }
        Ok(())
    }
}

/// The compound traits whose parts are plain elements.
macro_rules! elements {
    ($($trait:ident :: $method:ident),* $(,)?) => {$(
        impl ser::$trait for Compound<'_> {
            type Ok = ();
            type Error = Error;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
                self.element(value)
            }
            fn end(self) -> Result<(), Error> {
                Compound::end(self)
            }
        }
    )*};
}

elements!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
);

impl ser::SerializeMap for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.element(key)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        Compound::end(self)
    }
}

impl ser::SerializeStruct for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.field(key, value)
    }
    fn skip_field(&mut self, key: &'static str) -> Result<(), Error> {
        if !self.skip {
            self.ser.tag(25);
            self.ser.text(key);
        }
        Ok(())
    }
    fn end(self) -> Result<(), Error> {
        Compound::end(self)
    }
}

impl ser::SerializeStructVariant for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.field(key, value)
    }
    fn end(self) -> Result<(), Error> {
        Compound::end(self)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use egress_check::{AgentId, DestId, FileId, Span};

    #[derive(serde::Serialize)]
    struct Item {
        span: Span,
        name: String,
        to: DestId,
        who: Vec<AgentId>,
    }

    #[test]
    fn spans_are_left_out_and_ids_recorded() {
        let a = Item {
            span: Span::new(FileId(0), 0, 10),
            name: "x".into(),
            to: DestId(3),
            who: vec![AgentId(1), AgentId(2)],
        };
        let ca = canonical(&a);
        let b = Item {
            span: Span::new(FileId(1), 50, 90),
            ..a
        };
        let cb = canonical(&b);
        assert_eq!(ca.bytes, cb.bytes);
        assert_eq!(
            ca.refs,
            vec![(Kind::Dest, 3), (Kind::Agent, 1), (Kind::Agent, 2)]
        );
        let c = Item { to: DestId(4), ..b };
        assert_ne!(canonical(&c).bytes, cb.bytes);
    }
}
