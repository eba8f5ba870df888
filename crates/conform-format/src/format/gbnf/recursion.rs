//! Recursion in the rule graph: which rules can reach themselves ([`recursive_rules`], each
//! becoming a rule of the recursive network), and left recursion, which is refused
//! ([`check_left_recursion`], following references that nullable rules let through).

use crate::format::grammar::{Expr, Grammar, RuleId};
use crate::format::FormatError;

/// Rules that can reach themselves through references, in rule order: the rules of strongly
/// connected components with a cycle (Tarjan's algorithm with an explicit stack, so the work is
/// linear in the grammar and a chain of thousands of rules uses no native recursion).
pub(super) fn recursive_rules(g: &Grammar) -> Vec<RuleId> {
    let n = g.rules.len();
    let edges: Vec<Vec<RuleId>> = g
        .rules
        .iter()
        .map(|r| {
            let mut out = Vec::new();
            refs(&r.body, &mut out);
            out
        })
        .collect();
    const UNSEEN: usize = usize::MAX;
    let (mut index, mut low, mut on_stack) = (vec![UNSEEN; n], vec![0; n], vec![false; n]);
    let mut recursive = vec![false; n];
    let (mut next_index, mut stack) = (0, Vec::new());
    for start in 0..n {
        if index[start] != UNSEEN {
            continue;
        }
        // Each open rule with the index of its next edge to follow.
        let mut path: Vec<(RuleId, usize)> = vec![(start, 0)];
        (index[start], low[start], on_stack[start]) = (next_index, next_index, true);
        next_index += 1;
        stack.push(start);
        while let Some(&mut (r, ref mut next)) = path.last_mut() {
            if let Some(&s) = edges[r].get(*next) {
                *next += 1;
                if index[s] == UNSEEN {
                    (index[s], low[s], on_stack[s]) = (next_index, next_index, true);
                    next_index += 1;
                    stack.push(s);
                    path.push((s, 0));
                } else if on_stack[s] {
                    low[r] = low[r].min(index[s]);
                }
                continue;
            }
            path.pop();
            if let Some(&(parent, _)) = path.last() {
                low[parent] = low[parent].min(low[r]);
            }
            if low[r] == index[r] {
                let from = stack.iter().rposition(|&x| x == r).unwrap();
                let component = stack.split_off(from);
                let cyclic = component.len() > 1 || edges[r].contains(&r);
                for x in component {
                    on_stack[x] = false;
                    recursive[x] = cyclic;
                }
            }
        }
    }
    (0..n).filter(|&r| recursive[r]).collect()
}

fn refs(e: &Expr, out: &mut Vec<RuleId>) {
    match e {
        Expr::Ref(r) => out.push(*r),
        Expr::Seq(items) | Expr::Alt(items) => items.iter().for_each(|i| refs(i, out)),
        Expr::Repeat { expr, .. } => refs(expr, out),
        Expr::Literal(_) | Expr::Class { .. } => {}
    }
}

/// Rules that can derive the empty string.
fn nullable_rules(g: &Grammar) -> Vec<bool> {
    let mut nullable = vec![false; g.rules.len()];
    loop {
        let mut changed = false;
        for (i, r) in g.rules.iter().enumerate() {
            if !nullable[i] && expr_nullable(&r.body, &nullable) {
                nullable[i] = true;
                changed = true;
            }
        }
        if !changed {
            return nullable;
        }
    }
}

fn expr_nullable(e: &Expr, nullable: &[bool]) -> bool {
    match e {
        Expr::Literal(s) => s.is_empty(),
        Expr::Class { .. } => false,
        Expr::Ref(r) => nullable[*r],
        Expr::Seq(items) => items.iter().all(|i| expr_nullable(i, nullable)),
        Expr::Alt(alts) => alts.iter().any(|a| expr_nullable(a, nullable)),
        Expr::Repeat { expr, min, .. } => *min == 0 || expr_nullable(expr, nullable),
    }
}

/// Rules that `e` can reach before consuming any character.
fn leading_refs(e: &Expr, nullable: &[bool], out: &mut Vec<RuleId>) {
    match e {
        Expr::Ref(r) => out.push(*r),
        Expr::Seq(items) => {
            for i in items {
                leading_refs(i, nullable, out);
                if !expr_nullable(i, nullable) {
                    break;
                }
            }
        }
        Expr::Alt(alts) => alts.iter().for_each(|a| leading_refs(a, nullable, out)),
        Expr::Repeat { expr, .. } => leading_refs(expr, nullable, out),
        Expr::Literal(_) | Expr::Class { .. } => {}
    }
}

pub(super) fn check_left_recursion(g: &Grammar) -> Result<(), FormatError> {
    let nullable = nullable_rules(g);
    let edges: Vec<Vec<RuleId>> = g
        .rules
        .iter()
        .map(|r| {
            let mut out = Vec::new();
            leading_refs(&r.body, &nullable, &mut out);
            out
        })
        .collect();
    // Depth-first search for a cycle (0 = unseen, 1 = on the path, 2 = done), with an explicit
    // stack: a chain of thousands of rules must not become thousands of native frames.
    let mut mark = vec![0u8; g.rules.len()];
    for start in 0..g.rules.len() {
        if mark[start] != 0 {
            continue;
        }
        // The path from `start`, each rule with the index of its next edge to follow.
        let mut path: Vec<(RuleId, usize)> = vec![(start, 0)];
        mark[start] = 1;
        while let Some(&mut (r, ref mut next)) = path.last_mut() {
            let Some(&s) = edges[r].get(*next) else {
                mark[r] = 2;
                path.pop();
                continue;
            };
            *next += 1;
            if mark[s] == 1 {
                let from = path.iter().position(|&(p, _)| p == s).unwrap();
                let names: Vec<&str> =
                    path[from..].iter().map(|&(i, _)| i).chain([s]).map(|i| g.rules[i].name.as_str()).collect();
                return Err(FormatError::InvalidGrammar {
                    message: format!("left recursion is not supported: {}", names.join(" -> ")),
                    line: 0,
                    column: 0,
                });
            }
            if mark[s] == 0 {
                mark[s] = 1;
                path.push((s, 0));
            }
        }
    }
    Ok(())
}
