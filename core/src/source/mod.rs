//! Sources written once for every runtime. [`dir`]: the one directory walker and the reader
//! that turns a directory's files into engine [`crate::engine::Change`]s.

pub mod dir;
