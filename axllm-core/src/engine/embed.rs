//! The hidden state of a prompt's last token, for embeddings.

use super::{Engine, PromptFeed};
use crate::error::Result;
use crate::package::Embeddings;

impl Engine {
    /// Feeds `prompt` as [`Engine::feed_prompt`] does (reusing the cached
    /// prefix) but without the post model, then copies the last layer's output
    /// of the last token into `out` (`hidden` bf16 values): one extra
    /// device-to-host copy, no extra execution.
    pub fn embed(&mut self, emb: &Embeddings, prompt: &[u32], out: &mut [u16]) -> Result<PromptFeed> {
        let mut cursor = self.start_prompt(prompt)?;
        cursor.post = false;
        while !self.feed_chunk(emb, prompt, &mut cursor)? {}
        let feed = cursor.feed;
        self.guarded(|e| e.resident.read_last_hidden(out))?;
        Ok(feed)
    }
}
