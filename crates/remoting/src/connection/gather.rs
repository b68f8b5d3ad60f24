//! [`Gather`]: the frames of one write, as a list of slices for a vectored write.
//!
//! Encoding leaves every frame as two `Bytes`: its header (length fields and header) and its
//! body (the caller's, never copied on the way). Pieces up to a few hundred bytes are copied
//! into one contiguous buffer, next to their neighbours: one slice then carries many small
//! frames, so a write of a batch of small requests stays a single syscall. Larger pieces (the
//! bodies of real messages) go to the socket from their own `Bytes`, without a copy. A stream
//! that does not do vectored writes gets everything up to 16 KiB copied (a write per large
//! body, one for all the rest).

use std::io::IoSlice;

use bytes::{Bytes, BytesMut};

/// The most slices handed to one vectored write (Linux allows 1024).
pub(super) const MAX_IOV: usize = 64;

/// Pieces up to this size are copied next to their neighbours for a vectored stream.
const COPY_MAX_VECTORED: usize = 512;

/// Pieces up to this size are copied for a stream without vectored writes.
const COPY_MAX_PLAIN: usize = 16 * 1024;

/// One slice of a write.
#[derive(Debug)]
enum Seg {
    /// `scratch[start..end]`.
    Copied { start: usize, end: usize },
    /// A piece written from its own buffer.
    Shared(Bytes),
}

/// The pieces of the frames of one write, in order.
#[derive(Debug)]
pub(super) struct Gather {
    scratch: BytesMut,
    segs: Vec<Seg>,
    len: usize,
    copy_max: usize,
    vectored: bool,
}

impl Gather {
    /// An empty gather for a stream that does (or does not) do vectored writes.
    pub(super) fn new(vectored: bool) -> Self {
        Self {
            scratch: BytesMut::with_capacity(16 * 1024),
            segs: Vec::with_capacity(MAX_IOV),
            len: 0,
            copy_max: if vectored {
                COPY_MAX_VECTORED
            } else {
                COPY_MAX_PLAIN
            },
            vectored,
        }
    }

    /// Whether the stream does vectored writes.
    pub(super) const fn vectored(&self) -> bool {
        self.vectored
    }

    /// Appends a piece held in a `BytesMut` (a frame's head): copied when small, frozen (not
    /// copied) when large. The buffer comes back when it was copied (free for reuse).
    pub(super) fn push_mut(&mut self, piece: BytesMut) -> Option<BytesMut> {
        if piece.len() > self.copy_max {
            self.push(piece.freeze());
            None
        } else {
            self.copy(&piece);
            Some(piece)
        }
    }

    /// Appends a piece (nothing for an empty one).
    pub(super) fn push(&mut self, piece: Bytes) {
        if piece.is_empty() {
            return;
        }
        if piece.len() > self.copy_max {
            self.len += piece.len();
            self.segs.push(Seg::Shared(piece));
            return;
        }
        self.copy(&piece);
    }

    /// Copies a small piece after the previous copied one.
    fn copy(&mut self, piece: &[u8]) {
        if piece.is_empty() {
            return;
        }
        self.len += piece.len();
        let start = self.scratch.len();
        self.scratch.extend_from_slice(piece);
        let end = self.scratch.len();
        // Copied pieces are appended at the end of `scratch`: a copied last slice is extended.
        match self.segs.last_mut() {
            Some(Seg::Copied { end: last, .. }) => *last = end,
            _ => self.segs.push(Seg::Copied { start, end }),
        }
    }

    /// Whether no more frames should join this write: `limit` bytes, or [`MAX_IOV`] slices.
    pub(super) fn is_full(&self, limit: usize) -> bool {
        self.len >= limit || self.segs.len() >= MAX_IOV
    }

    /// Whether there is nothing to write.
    pub(super) const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Drops the pieces (keeping the copy buffer's capacity).
    pub(super) fn clear(&mut self) {
        self.scratch.clear();
        self.segs.clear();
        self.len = 0;
    }

    fn slice<'s>(&'s self, seg: &'s Seg) -> &'s [u8] {
        match seg {
            Seg::Copied { start, end } => &self.scratch[*start..*end],
            Seg::Shared(b) => b,
        }
    }

    /// A cursor at the first byte.
    pub(super) const fn cursor(&self) -> Cursor<'_> {
        Cursor {
            gather: self,
            seg: 0,
            offset: 0,
        }
    }
}

/// How far the gathered bytes are written.
#[derive(Debug)]
pub(super) struct Cursor<'a> {
    gather: &'a Gather,
    seg: usize,
    offset: usize,
}

impl<'a> Cursor<'a> {
    /// Whether every byte is written.
    pub(super) fn done(&self) -> bool {
        self.seg >= self.gather.segs.len()
    }

    /// Fills `iov` with the unwritten slices (as many as fit); how many.
    pub(super) fn fill(&self, iov: &mut [IoSlice<'a>]) -> usize {
        let gather: &'a Gather = self.gather;
        let rest = gather.segs.iter().skip(self.seg);
        let mut n = 0;
        for (slot, seg) in iov.iter_mut().zip(rest) {
            let bytes = gather.slice(seg);
            *slot = IoSlice::new(if n == 0 { &bytes[self.offset..] } else { bytes });
            n += 1;
        }
        n
    }

    /// Moves past `written` bytes.
    pub(super) fn advance(&mut self, mut written: usize) {
        while written > 0 && !self.done() {
            let left = self.gather.slice(&self.gather.segs[self.seg]).len() - self.offset;
            if written < left {
                self.offset += written;
                return;
            }
            written -= left;
            self.seg += 1;
            self.offset = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(g: &Gather, step: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut c = g.cursor();
        let mut iov = [IoSlice::new(&[]); MAX_IOV];
        while !c.done() {
            let n = c.fill(&mut iov);
            let mut budget = step;
            for s in &iov[..n] {
                let take = s.len().min(budget);
                out.extend_from_slice(&s[..take]);
                budget -= take;
            }
            c.advance(step.min(iov[..n].iter().map(|s| s.len()).sum()));
        }
        out
    }

    #[test]
    fn small_pieces_share_a_slice_and_large_ones_are_not_copied() {
        let mut g = Gather::new(true);
        let big = Bytes::from(vec![7u8; 4096]);
        assert!(
            g.push_mut(BytesMut::from(&b"head1"[..])).is_some(),
            "copied"
        );
        g.push(Bytes::from_static(b"body1"));
        g.push(Bytes::from_static(b"head2"));
        g.push(big.clone());
        g.push(Bytes::new());
        assert!(g.push_mut(BytesMut::new()).is_some());
        g.push(Bytes::from_static(b"head3"));
        let large_head = BytesMut::from(&[9u8; 600][..]);
        assert!(g.push_mut(large_head).is_none(), "kept, not copied");
        assert_eq!(g.segs.len(), 4, "{:?}", g.segs);
        assert!(
            matches!(g.segs[3], Seg::Shared(_)),
            "a large head is not copied"
        );
        match &g.segs[1] {
            Seg::Shared(b) => assert_eq!(b.as_ptr(), big.as_ptr(), "the body is not copied"),
            other => panic!("{other:?}"),
        }
        let mut want = b"head1body1head2".to_vec();
        want.extend_from_slice(&big);
        want.extend_from_slice(b"head3");
        want.extend_from_slice(&[9u8; 600]);
        for step in [1, 3, 7, 100, 4096, usize::MAX] {
            assert_eq!(written(&g, step), want, "step {step}");
        }
        g.clear();
        assert!(g.is_empty() && g.cursor().done());
    }

    #[test]
    fn without_vectored_writes_bodies_up_to_16k_are_copied() {
        let mut g = Gather::new(false);
        g.push(Bytes::from_static(b"h"));
        g.push(Bytes::from(vec![1u8; 16 * 1024]));
        g.push(Bytes::from(vec![2u8; 16 * 1024 + 1]));
        assert_eq!(g.segs.len(), 2);
        assert!(!g.is_full(64 * 1024));
        assert!(g.is_full(32 * 1024));
    }
}
