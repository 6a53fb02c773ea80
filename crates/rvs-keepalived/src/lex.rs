//! Files to token lines: comments, include, `@` conditionals, `$`
//! parameters, quotes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::{Options, Sink};

/// A token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Tok {
    /// An unquoted `{`.
    Open,
    /// An unquoted `}`.
    Close,
    /// A word (quotes removed).
    Word(String),
}

/// The tokens of one line, with where it came from.
#[derive(Clone, Debug)]
pub(crate) struct Line {
    pub(crate) file: Arc<PathBuf>,
    pub(crate) line: u32,
    pub(crate) toks: Vec<Tok>,
}

/// Deepest include nesting.
const MAX_INCLUDE_DEPTH: usize = 32;
/// Deepest re-processing of substituted text.
const MAX_EXPANSION_DEPTH: u32 = 16;
/// Largest text one substitution may produce.
const MAX_EXPANDED_LEN: usize = 1 << 20;
/// Most lines in all (expansion bombs).
const MAX_LINES: usize = 1_000_000;
/// Most bytes in all.
const MAX_BYTES: usize = 64 << 20;

const INCLUDES: [&str; 6] = [
    "include", "includer", "includem", "includew", "includeb", "includea",
];

pub(crate) struct Lexer<'a> {
    opts: &'a Options,
    sink: Sink,
    defs: HashMap<String, String>,
    /// Files being read (canonical), for cycles.
    stack: Vec<PathBuf>,
    out: Vec<Line>,
    /// Files in the order they were first read (for ordering messages).
    files: Vec<PathBuf>,
    /// Lines processed so far (expansion included), against [`MAX_LINES`].
    work: usize,
    /// Bytes processed so far, against [`MAX_BYTES`].
    bytes: usize,
    too_many: bool,
}

/// Where a line is being read.
struct Src {
    file: Arc<PathBuf>,
    /// Directory relative includes are resolved against.
    dir: Option<PathBuf>,
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(opts: &'a Options) -> Self {
        Self {
            opts,
            sink: Sink::default(),
            defs: HashMap::new(),
            stack: Vec::new(),
            out: Vec::new(),
            files: Vec::new(),
            work: 0,
            bytes: 0,
            too_many: false,
        }
    }

    pub(crate) fn into_parts(self) -> (Vec<Line>, Sink) {
        (self.out, self.sink)
    }

    /// Files in the order they were first read.
    pub(crate) fn files(&self) -> &[PathBuf] {
        &self.files
    }

    pub(crate) fn load_root(&mut self, path: &Path) {
        match std::fs::read(path) {
            Ok(bytes) => self.file(path, &bytes),
            Err(e) => self.sink.err(path, 0, format!("cannot read: {e}")),
        }
    }

    pub(crate) fn text_root(&mut self, name: &str, text: &str) {
        let src = Src {
            file: Arc::new(PathBuf::from(name)),
            dir: None,
        };
        self.text(&src, text);
    }

    fn file(&mut self, path: &Path, bytes: &[u8]) {
        let canon = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let text = String::from_utf8_lossy(bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes));
        let dir = canon.parent().map(Path::to_path_buf);
        self.stack.push(canon);
        let src = Src {
            file: Arc::new(path.to_path_buf()),
            dir,
        };
        self.text(&src, &text);
        self.stack.pop();
    }

    fn text(&mut self, src: &Src, text: &str) {
        if !self.files.contains(&src.file) {
            self.files.push(src.file.as_ref().clone());
        }
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let lines: Vec<(u32, String)> = text
            .split('\n')
            .enumerate()
            .map(|(i, l)| {
                let n = u32::try_from(i + 1).unwrap_or(u32::MAX);
                (
                    n,
                    strip_comment(l.strip_suffix('\r').unwrap_or(l)).to_string(),
                )
            })
            .collect();
        self.run(src, &lines, 0);
    }

    /// Processes lines: `depth` 0 for a file's own lines (where include is
    /// recognised), more for text produced by substitution.
    fn run(&mut self, src: &Src, lines: &[(u32, String)], depth: u32) {
        let mut i = 0;
        while i < lines.len() {
            let (n, ref raw) = lines[i];
            i += 1;
            self.work += 1;
            self.bytes += raw.len();
            if self.work > MAX_LINES || self.bytes > MAX_BYTES {
                if !self.too_many {
                    self.too_many = true;
                    self.sink.err(
                        &src.file,
                        n,
                        "configuration too large (more than a million lines or 64 MiB, substitution included)",
                    );
                }
                return;
            }
            let t = raw.trim();
            if t.is_empty() {
                continue;
            }
            if depth == 0 {
                let first = t.split_whitespace().next().unwrap_or("");
                if INCLUDES.contains(&first) {
                    self.include(src, n, first, t[first.len()..].trim());
                    continue;
                }
            }
            // Conditional prefix.
            let mut t = t;
            if let Some(rest) = t.strip_prefix('@') {
                let (word, after) = split_word(rest);
                let (neg, name) = match word.strip_prefix('^') {
                    Some(name) => (true, name),
                    None => (false, word),
                };
                if name.is_empty() {
                    self.sink
                        .err(&src.file, n, "'@' must be followed by a config id");
                    continue;
                }
                let matches = self.opts.config_id.as_deref() == Some(name);
                if matches == neg {
                    continue;
                }
                t = after.trim_start();
                if t.is_empty() {
                    continue;
                }
            }
            // Definition.
            if let Some((name, value)) = definition(t) {
                let mut value = value.trim().to_string();
                if let Some(first) = value.strip_suffix('\\') {
                    let mut parts = Vec::new();
                    if !first.trim().is_empty() {
                        parts.push(first.trim().to_string());
                    }
                    loop {
                        let Some((_, next)) = lines.get(i) else {
                            self.sink.err(
                                &src.file,
                                n,
                                format!("multi-line definition of ${name} does not end (last line ends with '\\')"),
                            );
                            break;
                        };
                        i += 1;
                        match next.trim_end().strip_suffix('\\') {
                            Some(p) => parts.push(p.to_string()),
                            None => {
                                parts.push(next.to_string());
                                break;
                            }
                        }
                    }
                    value = parts.join("\n");
                }
                self.defs.insert(name.to_string(), value);
                continue;
            }
            // Substitution.
            match self.substitute(src, n, t) {
                Err(why) => {
                    self.sink.err(&src.file, n, why);
                    continue;
                }
                Ok(Some(expanded)) => {
                    if depth >= MAX_EXPANSION_DEPTH {
                        self.sink.err(
                            &src.file,
                            n,
                            "parameter substitution nested too deeply (a definition that uses itself?)",
                        );
                        continue;
                    }
                    let sub: Vec<(u32, String)> =
                        expanded.split('\n').map(|l| (n, l.to_string())).collect();
                    self.run(src, &sub, depth + 1);
                    continue;
                }
                Ok(None) => {}
            }
            if INCLUDES.contains(&t.split_whitespace().next().unwrap_or("")) {
                // keepalived finds includes before conditionals and
                // substitution, so it does not follow this one either.
                self.sink.err(
                    &src.file,
                    n,
                    "include after an '@' prefix or from a parameter is not followed (as in keepalived): write it on a line of its own",
                );
                continue;
            }
            if t.starts_with("~SEQ") || t.starts_with("~LST") {
                self.sink.err(
                    &src.file,
                    n,
                    format!("{} blocks are not supported by rvs yet", &t[..4]),
                );
                continue;
            }
            match tokenize(t) {
                Ok(toks) => {
                    self.out.push(Line {
                        file: src.file.clone(),
                        line: n,
                        toks,
                    });
                }
                Err(why) => self.sink.err(&src.file, n, why),
            }
        }
    }

    fn include(&mut self, src: &Src, n: u32, kw: &str, arg: &str) {
        // Not tokenized: `{a,b}` is a brace expression here, not a block.
        let pattern = if arg.starts_with(['"', '\'']) {
            match tokenize(arg).as_deref() {
                Ok([Tok::Word(p)]) => p.clone(),
                Ok(_) => {
                    self.sink
                        .err(&src.file, n, format!("{kw}: expects one file name or glob"));
                    return;
                }
                Err(why) => {
                    self.sink.err(&src.file, n, why.clone());
                    return;
                }
            }
        } else if arg.is_empty() {
            self.sink
                .err(&src.file, n, format!("{kw}: missing file name"));
            return;
        } else if arg.contains(char::is_whitespace) {
            self.sink.err(
                &src.file,
                n,
                format!("{kw}: expects one file name or glob (quote a name with blanks)"),
            );
            return;
        } else {
            arg.to_string()
        };
        if self.stack.len() >= MAX_INCLUDE_DEPTH {
            self.sink.err(
                &src.file,
                n,
                format!("{kw} {pattern}: includes nested too deeply"),
            );
            return;
        }
        let patterns = match expand_braces(&pattern) {
            Ok(p) => p,
            Err(why) => {
                self.sink
                    .err(&src.file, n, format!("{kw} {pattern}: {why}"));
                return;
            }
        };
        for pat in patterns {
            let full = if Path::new(&pat).is_absolute() {
                PathBuf::from(&pat)
            } else if let Some(dir) = &src.dir {
                dir.join(&pat)
            } else {
                self.sink.err(
                    &src.file,
                    n,
                    format!("{kw} {pat}: a relative include needs a configuration file (text has no directory)"),
                );
                continue;
            };
            let is_glob = pat.contains(['*', '?', '[']);
            let paths: Vec<PathBuf> = if is_glob {
                match glob::glob(&full.to_string_lossy()) {
                    Ok(it) => {
                        let mut v = Vec::new();
                        for p in it {
                            match p {
                                Ok(p) => v.push(p),
                                Err(e) => self.sink.err(&src.file, n, format!("{kw} {pat}: {e}")),
                            }
                        }
                        v.sort();
                        if v.is_empty() {
                            self.sink
                                .warn(&src.file, n, format!("{kw} {pat}: no file matches"));
                        }
                        v
                    }
                    Err(e) => {
                        self.sink
                            .err(&src.file, n, format!("{kw} {pat}: bad glob: {e}"));
                        continue;
                    }
                }
            } else {
                vec![full]
            };
            for p in paths {
                if p.is_dir() {
                    if !is_glob {
                        self.sink.err(
                            &src.file,
                            n,
                            format!("{kw} {}: is a directory", p.display()),
                        );
                    }
                    continue;
                }
                let canon = std::fs::canonicalize(&p).unwrap_or_else(|_| p.clone());
                if self.stack.contains(&canon) {
                    self.sink.err(
                        &src.file,
                        n,
                        format!(
                            "{kw} {}: include cycle (the file is already being read)",
                            p.display()
                        ),
                    );
                    continue;
                }
                match std::fs::read(&p) {
                    Ok(bytes) => self.file(&p, &bytes),
                    Err(e) => self.sink.err(
                        &src.file,
                        n,
                        format!("{kw} {}: cannot read: {e}", p.display()),
                    ),
                }
            }
        }
    }

    /// Replaces defined parameters; `Ok(None)` when nothing was replaced.
    fn substitute(&mut self, src: &Src, n: u32, t: &str) -> Result<Option<String>, String> {
        if !t.contains('$') {
            return Ok(None);
        }
        let mut cur = t.to_string();
        let mut changed = false;
        for _ in 0..32 {
            let (next, did) = self.substitute_once(src, n, &cur);
            if !did {
                return Ok(changed.then_some(cur));
            }
            if next.len() > MAX_EXPANDED_LEN {
                return Err("parameter substitution produces too much text".into());
            }
            changed = true;
            cur = next;
        }
        Err("parameter substitution does not end (a definition that uses itself?)".into())
    }

    fn substitute_once(&mut self, src: &Src, n: u32, t: &str) -> (String, bool) {
        let b = t.as_bytes();
        let mut out = String::with_capacity(t.len());
        let mut did = false;
        let mut i = 0;
        let mut copied = 0;
        while i < b.len() {
            if b[i] != b'$' {
                i += 1;
                continue;
            }
            let (name, end, braced) = if b.get(i + 1) == Some(&b'{') {
                match t[i + 2..].find('}') {
                    Some(close) => (&t[i + 2..i + 2 + close], i + 2 + close + 1, true),
                    None => {
                        i += 1;
                        continue;
                    }
                }
            } else {
                let start = i + 1;
                let mut j = start;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                if j == start || (j < b.len() && !b[j].is_ascii_whitespace()) {
                    i += 1;
                    continue;
                }
                (&t[start..j], j, false)
            };
            let key = if braced {
                name.split_whitespace().next().unwrap_or("")
            } else {
                name
            };
            let value: Option<String> = match key {
                "_PWD" => Some(
                    src.dir
                        .as_ref()
                        .map(|d| d.to_string_lossy().into_owned())
                        .unwrap_or_else(|| ".".into()),
                ),
                "_INSTANCE" => Some(self.opts.config_id.clone().unwrap_or_default()),
                "_HASH" => Some("#".into()),
                "_BANG" => Some("!".into()),
                "_RANDOM" => {
                    self.sink.warn(
                        &src.file,
                        n,
                        "${_RANDOM} is not supported by rvs yet (left as written)",
                    );
                    None
                }
                _ => self.defs.get(key).cloned(),
            };
            match value {
                Some(v) => {
                    out.push_str(&t[copied..i]);
                    out.push_str(&v);
                    copied = end;
                    i = end;
                    did = true;
                }
                None => i += 1,
            }
        }
        out.push_str(&t[copied..]);
        (out, did)
    }
}

/// Most names one brace expression may give.
const MAX_BRACE_NAMES: usize = 1024;

/// csh-style brace expansion (`{foo/{,cat,dog},bar}`), as keepalived's
/// glob(GLOB_BRACE).
fn expand_braces(p: &str) -> Result<Vec<String>, String> {
    let b = p.as_bytes();
    if p.matches('{').count() > 64 {
        return Err("too many '{' in the file name".into());
    }
    let Some(open) = p.find('{') else {
        return Ok(vec![p.to_string()]);
    };
    let mut depth = 0usize;
    let mut commas = Vec::new();
    let mut close = None;
    for (i, &c) in b.iter().enumerate().skip(open) {
        match c {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(i);
                    break;
                }
            }
            b',' if depth == 1 => commas.push(i),
            _ => {}
        }
    }
    let close = close.ok_or("unbalanced '{' in the file name")?;
    let (pre, post) = (&p[..open], &p[close + 1..]);
    let mut alts = Vec::new();
    let mut from = open + 1;
    for c in commas.into_iter().chain(std::iter::once(close)) {
        alts.push(&p[from..c]);
        from = c + 1;
    }
    let mut out = Vec::new();
    for a in alts {
        for tail in expand_braces(&format!("{a}{post}"))? {
            out.push(format!("{pre}{tail}"));
            if out.len() > MAX_BRACE_NAMES {
                return Err("brace expression gives too many names".into());
            }
        }
    }
    Ok(out)
}

/// `$NAME=value` at the start of `t`: (NAME, value).
fn definition(t: &str) -> Option<(&str, &str)> {
    let rest = t.strip_prefix('$')?;
    let eq = rest.find('=')?;
    let name = &rest[..eq];
    let mut chars = name.chars();
    let first = chars.next()?;
    if !(first.is_ascii_alphabetic() || first == '_')
        || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return None;
    }
    Some((name, &rest[eq + 1..]))
}

fn split_word(s: &str) -> (&str, &str) {
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    }
}

/// The line up to an unquoted `#` or `!`.
pub(crate) fn strip_comment(l: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in l.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '#' | '!' => return &l[..i],
            _ => {}
        }
    }
    l
}

/// Splits a line into words and braces.
pub(crate) fn tokenize(t: &str) -> Result<Vec<Tok>, String> {
    let mut toks = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = t.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    toks.push(Tok::Word(std::mem::take(&mut cur)));
                    in_word = false;
                }
            }
            '{' | '}' => {
                if in_word {
                    toks.push(Tok::Word(std::mem::take(&mut cur)));
                    in_word = false;
                }
                toks.push(if c == '{' { Tok::Open } else { Tok::Close });
            }
            '"' | '\'' => {
                in_word = true;
                let q = c;
                let mut closed = false;
                while let Some(c) = chars.next() {
                    if c == q {
                        closed = true;
                        break;
                    }
                    if c == '\\' {
                        escape(&mut chars, &mut cur);
                    } else {
                        cur.push(c);
                    }
                }
                if !closed {
                    return Err(format!("unterminated quoted string (missing {q})"));
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        toks.push(Tok::Word(cur));
    }
    Ok(toks)
}

/// One escape inside quotes (after the backslash).
fn escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, out: &mut String) {
    let Some(c) = chars.next() else {
        out.push('\\');
        return;
    };
    match c {
        'a' => out.push('\x07'),
        'b' => out.push('\x08'),
        'E' | 'e' => out.push('\x1b'),
        'f' => out.push('\x0c'),
        'n' => out.push('\n'),
        'r' => out.push('\r'),
        't' => out.push('\t'),
        'v' => out.push('\x0b'),
        '0'..='7' => {
            let mut v = c.to_digit(8).unwrap_or(0);
            for _ in 0..2 {
                match chars.peek().and_then(|d| d.to_digit(8)) {
                    Some(d) => {
                        v = v * 8 + d;
                        chars.next();
                    }
                    None => break,
                }
            }
            out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
        }
        'x' => {
            let mut v: u32 = 0;
            let mut any = false;
            while let Some(d) = chars.peek().and_then(|d| d.to_digit(16)) {
                v = v.saturating_mul(16).saturating_add(d) & 0xff;
                any = true;
                chars.next();
            }
            if any {
                out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
            } else {
                out.push('x');
            }
        }
        'c' => match chars.next() {
            Some(k) => out.push(char::from_u32((k as u32) & 0x1f).unwrap_or('\u{fffd}')),
            None => out.push('c'),
        },
        other => out.push(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(t: &str) -> Vec<String> {
        tokenize(t)
            .unwrap()
            .into_iter()
            .map(|t| match t {
                Tok::Word(w) => w,
                Tok::Open => "{".into(),
                Tok::Close => "}".into(),
            })
            .collect()
    }

    #[test]
    fn quotes_join_and_split_as_the_man_page_says() {
        assert_eq!(
            words(r#"abcd" efg h jkl "mnop"#),
            vec!["abcd efg h jkl mnop"]
        );
        assert_eq!(
            words(r#"abcd "efg h jkl" mnop"#),
            vec!["abcd", "efg h jkl", "mnop"]
        );
        assert_eq!(words(r#"a 'b c' "d\"e""#), vec!["a", "b c", "d\"e"]);
        assert_eq!(words(r#""\x41\101\t""#), vec!["AA\t"]);
        assert_eq!(words(r#""""#), vec![""]);
    }

    #[test]
    fn braces_are_tokens_unless_quoted() {
        assert_eq!(
            words("real_server 1.2.3.4 80{"),
            vec!["real_server", "1.2.3.4", "80", "{"]
        );
        assert_eq!(words("a}b"), vec!["a", "}", "b"]);
        assert_eq!(words(r#""{""#), vec!["{"]);
        assert_eq!(tokenize(r#""{""#).unwrap(), vec![Tok::Word("{".into())]);
    }

    #[test]
    fn unterminated_quote_is_an_error() {
        assert!(tokenize(r#"misc_path "/bin/x"#).is_err());
    }

    #[test]
    fn comments_start_anywhere_outside_quotes() {
        assert_eq!(strip_comment("weight 1 # two"), "weight 1 ");
        assert_eq!(strip_comment("weight 1! two"), "weight 1");
        assert_eq!(
            strip_comment(r#"misc_path "/bin/a # b" # c"#),
            r#"misc_path "/bin/a # b" "#
        );
        assert_eq!(strip_comment(r#"x "a\" # b" ! c"#), r#"x "a\" # b" "#);
        assert_eq!(strip_comment("! whole line"), "");
    }

    #[test]
    fn brace_expansion_as_csh() {
        assert_eq!(expand_braces("a.conf"), Ok(vec!["a.conf".to_string()]));
        assert_eq!(
            expand_braces("{foo/{,cat,dog},bar}"),
            Ok(vec![
                "foo/".into(),
                "foo/cat".into(),
                "foo/dog".into(),
                "bar".into()
            ])
        );
        assert_eq!(
            expand_braces("d/{a,b}.conf"),
            Ok(vec!["d/a.conf".into(), "d/b.conf".into()])
        );
        assert!(expand_braces("d/{a,b.conf").is_err());
        assert!(expand_braces(&"{a,b}".repeat(11)).is_err());
    }

    #[test]
    fn definition_names() {
        assert_eq!(definition("$A_1=x y"), Some(("A_1", "x y")));
        assert_eq!(definition("$A="), Some(("A", "")));
        assert_eq!(definition("$1A=x"), None);
        assert_eq!(definition("$A B=x"), None);
        assert_eq!(definition("$A"), None);
    }
}
