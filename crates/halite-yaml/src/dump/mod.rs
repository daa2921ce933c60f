//! Values to text as Salt's Python writes them: `json.dumps` and PyYAML's `safe_dump`.
//! Used by the CLI's outputters and by the `json`/`yaml` filters of the pillar renderer.

mod json;
mod yaml;

pub use json::{json, JsonStyle};
pub use yaml::{double_quoted, single_quoted, yaml};
