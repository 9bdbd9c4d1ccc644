//! The raw bf16 embedding table `[V, H]` (`V · H` little-endian bf16 values,
//! row-major, no header), memory-mapped: it is never read whole into memory;
//! a lookup copies one row's bytes.

use crate::error::{Error, Result};
use memmap2::Mmap;
use std::path::{Path, PathBuf};

/// The embedding table of a loaded model.
#[derive(Debug)]
pub struct Embeddings {
    map: Mmap,
    path: PathBuf,
    rows: usize,
    hidden: usize,
}

impl Embeddings {
    /// Maps `file` (opened from `path`), which must hold exactly `rows * hidden` bf16 values.
    pub fn open(file: &std::fs::File, path: &Path, rows: usize, hidden: usize) -> Result<Embeddings> {
        let len = file.metadata().map_err(|e| Error::bad_file_from(path, "cannot read the metadata", e))?.len();
        let want = (rows as u64) * (hidden as u64) * 2;
        if len != want {
            return Err(Error::bad_file(
                path,
                format!(
                    "the embedding table is {len} bytes; {rows} tokens x {hidden} hidden x 2 bytes (bf16) = {want} expected"
                ),
            ));
        }
        let map =
            crate::npu::map_file(file).map_err(|e| Error::bad_file_from(path, "cannot map the embedding table", e))?;
        Ok(Embeddings { map, path: path.into(), rows, hidden })
    }

    /// The bytes of token `id`'s row (`H` little-endian bf16 values).
    pub fn row(&self, id: u32) -> Result<&[u8]> {
        let id = id as usize;
        if id >= self.rows {
            return Err(Error::invalid(format!(
                "token id {id} is outside the embedding table of {} rows ({})",
                self.rows,
                self.path.display()
            )));
        }
        let n = self.hidden * 2;
        Ok(&self.map[id * n..(id + 1) * n])
    }
}
