//! [`FrameBuf`]: a frame inside a larger buffer, with headroom in front so
//! that encapsulation can grow the frame in place (as an AF_XDP UMEM frame or
//! an XDP `xdp_adjust_head` does), and tailroom behind it.

use crate::Error;

/// A frame occupying `buf[head..head + len]`.
#[derive(Debug)]
pub struct FrameBuf<'a> {
    buf: &'a mut [u8],
    head: usize,
    len: usize,
}

impl<'a> FrameBuf<'a> {
    /// A frame of `len` bytes starting `head` bytes into `buf`.
    ///
    /// Fails with [`Error::Truncated`] when `head + len` exceeds the buffer.
    pub fn new(buf: &'a mut [u8], head: usize, len: usize) -> Result<Self, Error> {
        if head.checked_add(len).is_none_or(|end| end > buf.len()) {
            return Err(Error::Truncated);
        }
        Ok(Self { buf, head, len })
    }

    /// The frame's bytes.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buf[self.head..self.head + self.len]
    }

    /// The frame's bytes, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.head..self.head + self.len]
    }

    /// Length of the frame.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the frame is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Offset of the frame's first byte in the underlying buffer.
    #[inline]
    pub fn head(&self) -> usize {
        self.head
    }

    /// Free bytes in front of the frame.
    #[inline]
    pub fn headroom(&self) -> usize {
        self.head
    }

    /// Free bytes behind the frame.
    #[inline]
    pub fn tailroom(&self) -> usize {
        self.buf.len() - self.head - self.len
    }

    /// Grows the frame by `n` bytes at the front (contents of the new bytes
    /// are whatever the buffer held).
    #[inline]
    pub fn push_front(&mut self, n: usize) -> Result<(), Error> {
        if n > self.head {
            return Err(Error::NoRoom);
        }
        self.head -= n;
        self.len += n;
        Ok(())
    }

    /// Shrinks the frame by `n` bytes at the front.
    #[inline]
    pub fn pop_front(&mut self, n: usize) -> Result<(), Error> {
        if n > self.len {
            return Err(Error::Truncated);
        }
        self.head += n;
        self.len -= n;
        Ok(())
    }

    /// Sets the frame's length (growing into tailroom or truncating).
    #[inline]
    pub fn set_len(&mut self, len: usize) -> Result<(), Error> {
        if self.head + len > self.buf.len() {
            return Err(Error::NoRoom);
        }
        self.len = len;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_shrinks_within_bounds() {
        let mut mem = [0u8; 64];
        let mut f = FrameBuf::new(&mut mem, 16, 20).unwrap();
        assert_eq!((f.headroom(), f.tailroom()), (16, 28));
        f.push_front(16).unwrap();
        assert_eq!(f.push_front(1), Err(Error::NoRoom));
        assert_eq!(f.len(), 36);
        f.pop_front(4).unwrap();
        assert_eq!(f.head(), 4);
        assert_eq!(f.set_len(61), Err(Error::NoRoom));
        f.set_len(60).unwrap();
        assert_eq!(f.tailroom(), 0);
        assert!(FrameBuf::new(&mut mem, 60, 5).is_err());
    }
}
