//! Per-position decode inputs ([`InputUpload::Tables`]).
//!
//! A decode step's `indices` (its position) and `mask` (the positions before
//! it visible, the rest of its group's history hidden) depend on nothing but
//! the position: not on the KV slot, the tokens, a reused prefix or a
//! linear layer's state (whose gate mask is constant in decode). So each
//! position gets its own two dedicated allocations, sized exactly as its
//! decode group's tensors and written once at load; a step rebinds every
//! layer's `indices`/`mask` to its position's pair instead of copying new
//! values into one buffer. Bindings are host-local (no message); rebinding an
//! input to another dedicated allocation before each call is what the
//! independent driver does with its hidden-state ping-pong on a card
//! (hardware-facts: F37), and dedicated buffers avoid the offset binds of
//! `mask`/`indices` that misbehaved (F23).
//!
//! The tables cost two small allocations per position and their bytes grow
//! with the square of the context (a mask row per position), so they cover
//! the positions from 0 up to a budget of bytes (a load option, 64 MiB by
//! default); later positions upload their inputs as [`InputUpload::Separate`] does.
//!
//! [`InputUpload::Tables`]: super::schedule::InputUpload::Tables
//! [`InputUpload::Separate`]: super::schedule::InputUpload::Separate

use super::geometry::{Geometry, names};
use super::masks;
use crate::error::{Error, Result};
use crate::npu::{DeviceBuffer, Entered, HostBuffer};

/// Bytes of position `p`'s `indices` and `mask` (its decode group's sizes).
fn position_bytes(geo: &Geometry, p: usize) -> Option<(usize, usize)> {
    let g = geo.decode_group(p)?;
    Some((geo.tensor_size(g.index, names::INDICES), geo.tensor_size(g.index, names::MASK)))
}

/// The positions the tables cover (from 0) within `budget` bytes, and their device bytes.
pub fn plan(geo: &Geometry, budget: u64) -> (usize, u64) {
    let (mut positions, mut bytes) = (0, 0u64);
    while positions < geo.max_positions() {
        let Some((i, m)) = position_bytes(geo, positions) else { break };
        if bytes + (i + m) as u64 > budget {
            break;
        }
        bytes += (i + m) as u64;
        positions += 1;
    }
    (positions, bytes)
}

/// Each covered position's `indices` and `mask`, on the card.
#[derive(Debug)]
pub struct InputTables {
    indices: Vec<DeviceBuffer>,
    masks: Vec<DeviceBuffer>,
}

impl InputTables {
    /// Allocates and writes the inputs of positions `0..positions` (as
    /// [`plan`] counts them). Any failure frees what was allocated.
    pub fn new(cx: &Entered<'_>, geo: &Geometry, positions: usize) -> Result<InputTables> {
        let widest = (0..positions).filter_map(|p| position_bytes(geo, p)).map(|(i, m)| i.max(m)).max().unwrap_or(0);
        // Pinned staging (hardware-facts: F15): thousands of small copies at load.
        let mut host = HostBuffer::new(cx, widest.div_ceil(8).max(1) * 8)?;
        let (mut indices, mut masks) = (Vec::with_capacity(positions), Vec::with_capacity(positions));
        for p in 0..positions {
            let group = geo.decode_group(p).ok_or_else(|| Error::invalid(format!("no decode group holds position {p}")))?;
            let (i_bytes, m_bytes) = position_bytes(geo, p).expect("the group exists");
            if i_bytes != 4 || m_bytes != (group.capacity + 1) * 2 {
                return Err(Error::invalid(format!(
                    "decode group {}: indices of {i_bytes} bytes and a mask of {m_bytes}, expected 4 and {}",
                    group.index,
                    (group.capacity + 1) * 2
                )));
            }
            let bytes = host.as_mut_slice();
            bytes[..4].copy_from_slice(&(p as u32).to_le_bytes());
            let index = DeviceBuffer::alloc(cx, 4)?;
            index.write(cx, 0, &host.as_slice()[..4])?;
            indices.push(index);
            masks::decode_mask(bytemuck::cast_slice_mut(&mut host.as_mut_slice()[..m_bytes]), p);
            let mask = DeviceBuffer::alloc(cx, m_bytes)?;
            mask.write(cx, 0, &host.as_slice()[..m_bytes])?;
            masks.push(mask);
        }
        Ok(InputTables { indices, masks })
    }

    /// Position `p`'s `indices` and `mask`, `None` past the tables.
    pub fn get(&self, p: usize) -> Option<(&DeviceBuffer, &DeviceBuffer)> {
        Some((self.indices.get(p)?, self.masks.get(p)?))
    }

    /// Positions covered (from 0).
    pub fn positions(&self) -> usize {
        self.indices.len()
    }

    /// Bytes allocated on the device.
    pub fn device_bytes(&self) -> u64 {
        self.indices.iter().chain(&self.masks).map(|b| b.size() as u64).sum()
    }
}
