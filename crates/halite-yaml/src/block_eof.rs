//! The trailing line breaks of a block scalar (`|`, `>`) that runs into the end of the input.
//!
//! libyaml only keeps line breaks it actually read: `k: |\n  text` (no final newline) is
//! `"text"`, and `k: |\n` is `""`. yaml-rust2 behaves as if the input ended with one more line
//! break, giving `"text\n"` and `"\n"`. The scalar's body is the same in both; only the run of
//! trailing `\n` differs, so for the last block scalar of a document, when nothing but blank
//! lines follows it, that run is recomputed here with libyaml's chomping rules:
//!
//! * strip (`-`): no trailing break;
//! * clip (default): one break if a content line was followed by a line break;
//! * keep (`+`): every line break after the last content line (or after the header line
//!   when there is no content).

#[derive(Clone, Copy, PartialEq, Eq)]
enum Chomping {
    Strip,
    Clip,
    Keep,
}

/// Returns libyaml's value for a block scalar that yaml-rust2 read as `value`, whose event
/// mark is at char index `mark_index` (content start, or the header when there is no
/// content), or `None` when it does not reach the end of the input or its header cannot be
/// found (then yaml-rust2's value stands).
pub(crate) fn libyaml_value(text: &str, mark_index: usize, value: &str) -> Option<String> {
    let mark = byte_offset(text, mark_index)?;
    let body = value.trim_end_matches('\n');
    // With content, yaml-rust2 marks the first content character; without, the header.
    let has_content = !body.is_empty();
    let (header_line, after_header) = if has_content {
        let line_start = text[..mark].rfind('\n').map_or(0, |i| i + 1);
        let before = text[..line_start].trim_end_matches(['\n', '\r', ' ', '\t']);
        let header_start = before.rfind('\n').map_or(0, |i| i + 1);
        (&before[header_start..], &text[line_start..])
    } else {
        let line_start = text[..mark].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[mark..].find('\n').map_or(text.len(), |i| mark + i);
        let after = if line_end < text.len() { &text[line_end + 1..] } else { "" };
        (&text[line_start..line_end], after)
    };
    let chomping = header_chomping(header_line)?;

    if !has_content {
        // Any non-blank line after the header ends the (empty) scalar before the end.
        if after_header.lines().any(|l| !l.trim().is_empty()) {
            return None;
        }
        let breaks = after_header.matches('\n').count();
        return Some(match chomping {
            Chomping::Keep => "\n".repeat(breaks),
            Chomping::Strip | Chomping::Clip => String::new(),
        });
    }

    let indent = text[text[..mark].rfind('\n').map_or(0, |i| i + 1)..mark].chars().count();
    let mut last_content_end = None;
    let mut offset = 0;
    for line in after_header.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\n', '\r']);
        let leading = bare.chars().take_while(|&c| c == ' ').count();
        if !bare.trim().is_empty() && leading < indent {
            // A less indented comment (or `...`) ends the scalar before the end of input.
            return None;
        }
        if bare.chars().count() > indent {
            last_content_end = Some(offset + bare.len());
        }
        offset += line.len();
    }
    let breaks = after_header[last_content_end?..].matches('\n').count();
    let trailing = match chomping {
        Chomping::Strip => 0,
        Chomping::Clip => breaks.min(1),
        Chomping::Keep => breaks,
    };
    Some(format!("{body}{}", "\n".repeat(trailing)))
}

/// The chomping indicator of a block scalar header line such as `key: |+2  # comment`.
fn header_chomping(line: &str) -> Option<Chomping> {
    let line = line.trim_end_matches('\r');
    let code = match find_comment(line) {
        Some(at) => &line[..at],
        None => line,
    };
    let indicator = code.split_whitespace().last()?;
    let rest = indicator.strip_prefix(['|', '>'])?;
    if rest.len() > 2 || !rest.chars().all(|c| matches!(c, '+' | '-' | '1'..='9')) {
        return None;
    }
    Some(if rest.contains('+') {
        Chomping::Keep
    } else if rest.contains('-') {
        Chomping::Strip
    } else {
        Chomping::Clip
    })
}

/// Start of a ` #` comment.
fn find_comment(line: &str) -> Option<usize> {
    line.char_indices()
        .zip(line.chars().skip(1))
        .find(|((_, c), next)| matches!(c, ' ' | '\t') && *next == '#')
        .map(|((i, _), _)| i)
}

fn byte_offset(text: &str, char_index: usize) -> Option<usize> {
    if char_index == text.chars().count() {
        return Some(text.len());
    }
    text.char_indices().nth(char_index).map(|(i, _)| i)
}
