//! A borrowing cursor over untrusted bytes, in the shape of rustls' `msgs/codec.rs` `Reader`:
//! every read is bounds-checked and returns `None` past the end, so parsers map a short read to
//! their own error and never index out of range.

/// A cursor over `buf`; what it hands out borrows from `buf`.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    off: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, off: 0 }
    }

    /// The next `n` bytes, or `None` (and nothing consumed) if fewer are left.
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.off.checked_add(n)?;
        let out = self.buf.get(self.off..end)?;
        self.off = end;
        Some(out)
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_be_bytes)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    /// Everything not read yet.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let out = self.buf.get(self.off..).unwrap_or_default();
        self.off = self.buf.len();
        out
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.off)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::Reader;

    #[test]
    fn reads_big_endian_and_stops_at_the_end() {
        let mut r = Reader::new(&[1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(r.u8(), Some(1));
        assert_eq!(r.u16(), Some(0x0203));
        assert_eq!(r.u64(), None, "a short read consumes nothing");
        assert_eq!(r.remaining(), 4);
        assert_eq!(r.take(usize::MAX), None);
        assert_eq!(r.rest(), &[4, 5, 6, 7]);
        assert!(r.is_empty());
        assert_eq!(r.u8(), None);
        assert_eq!(r.rest(), &[] as &[u8]);
    }
}
