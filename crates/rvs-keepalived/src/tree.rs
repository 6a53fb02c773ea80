//! Token lines to a keyword tree.

use std::path::PathBuf;

use crate::lex::{Line, Tok};
use crate::{Block, Sink};

/// Deepest block nesting (keepalived's deepest is about 5).
const MAX_DEPTH: usize = 64;

struct Open {
    block: Block,
    children: Vec<Block>,
}

/// Builds the tree: a statement ends at the end of its line, at `{` (its
/// sub-block follows) or at `}`; a `{` that starts a line opens the block
/// of the previous statement when that has none yet.
pub(crate) fn build(lines: Vec<Line>, sink: &mut Sink) -> Vec<Block> {
    let mut root: Vec<Block> = Vec::new();
    let mut stack: Vec<Open> = Vec::new();
    for Line { file, line, toks } in lines {
        let fpath: PathBuf = file.as_ref().clone();
        let mut cur: Vec<String> = Vec::new();
        let mut first_on_line = true;
        for tok in toks {
            match tok {
                Tok::Word(w) => cur.push(w),
                Tok::Open => {
                    let opener = if !cur.is_empty() {
                        Some(statement(&fpath, line, std::mem::take(&mut cur)))
                    } else if first_on_line {
                        let siblings = match stack.last_mut() {
                            Some(o) => &mut o.children,
                            None => &mut root,
                        };
                        match siblings.last() {
                            Some(b) if b.children.is_none() => siblings.pop(),
                            _ => None,
                        }
                    } else {
                        None
                    };
                    match opener {
                        Some(block) if stack.len() < MAX_DEPTH => stack.push(Open {
                            block,
                            children: Vec::new(),
                        }),
                        Some(_) => {
                            sink.err(&fpath, line, "blocks nested too deeply");
                            return root;
                        }
                        None => {
                            sink.err(&fpath, line, "'{' without a keyword before it");
                            // Open an anonymous block so the braces stay balanced.
                            stack.push(Open {
                                block: statement(&fpath, line, vec![String::new()]),
                                children: Vec::new(),
                            });
                        }
                    }
                }
                Tok::Close => {
                    if !cur.is_empty() {
                        let b = statement(&fpath, line, std::mem::take(&mut cur));
                        push(&mut stack, &mut root, b);
                    }
                    match stack.pop() {
                        Some(Open {
                            mut block,
                            children,
                        }) => {
                            block.children = Some(children);
                            push(&mut stack, &mut root, block);
                        }
                        None => sink.err(&fpath, line, "'}' without a matching '{'"),
                    }
                }
            }
            first_on_line = false;
        }
        if !cur.is_empty() {
            let b = statement(&fpath, line, cur);
            push(&mut stack, &mut root, b);
        }
    }
    while let Some(Open {
        mut block,
        children,
    }) = stack.pop()
    {
        sink.err(
            &block.file,
            block.line,
            format!("'{{' of '{}' is never closed", block.keyword),
        );
        block.children = Some(children);
        push(&mut stack, &mut root, block);
    }
    root
}

fn statement(file: &std::path::Path, line: u32, mut words: Vec<String>) -> Block {
    let keyword = words.remove(0);
    Block {
        file: file.to_path_buf(),
        line,
        keyword,
        args: words,
        children: None,
    }
}

fn push(stack: &mut [Open], root: &mut Vec<Block>, b: Block) {
    match stack.last_mut() {
        Some(o) => o.children.push(b),
        None => root.push(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Options;
    use crate::lex::Lexer;

    fn tree(text: &str) -> (Vec<Block>, Sink) {
        let opts = Options::default();
        let mut lx = Lexer::new(&opts);
        lx.text_root("t.conf", text);
        let (lines, mut sink) = lx.into_parts();
        let t = build(lines, &mut sink);
        (t, sink)
    }

    fn shape(bs: &[Block]) -> String {
        bs.iter()
            .map(|b| {
                let mut s = format!("{}@{}", b.keyword, b.line);
                for a in &b.args {
                    s.push(' ');
                    s.push_str(a);
                }
                if let Some(c) = &b.children {
                    s.push_str(&format!("{{{}}}", shape(c)));
                }
                s
            })
            .collect::<Vec<_>>()
            .join(";")
    }

    #[test]
    fn brace_on_the_next_line_opens_the_previous_statement() {
        let (t, s) = tree("a 1\n{\n b 2\n}\nc\n");
        assert!(s.errors.is_empty(), "{:?}", s.errors);
        assert_eq!(shape(&t), "a@1 1{b@3 2};c@5");
    }

    #[test]
    fn one_line_blocks() {
        let (t, s) = tree("a { b 1 c { d } }\ne\n");
        assert!(s.errors.is_empty());
        assert_eq!(shape(&t), "a@1{b@1 1 c{d@1}};e@2");
    }

    #[test]
    fn unbalanced_braces_are_errors_with_lines() {
        let (_, s) = tree("a {\n b\n");
        assert_eq!(s.errors.len(), 1);
        assert_eq!(s.errors[0].line, 1);
        assert!(s.errors[0].message.contains("never closed"));
        let (_, s) = tree("a\n}\n");
        assert_eq!(s.errors[0].line, 2);
        assert!(s.errors[0].message.contains("without a matching"));
        let (_, s) = tree("a {}\n{\n}\n");
        assert_eq!(s.errors[0].line, 2);
        assert!(s.errors[0].message.contains("without a keyword"));
    }
}
