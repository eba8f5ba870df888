//! Fewest bytes from each state of a transition table to an accepting state: one backward
//! breadth-first search, shared by the DFA, the product automaton and the tests' reference DFA.

/// `row(s)` lists state `s`'s transitions, `dead` where there is none. The answer is
/// `u32::MAX` for a state from which no accepting state is reachable.
pub fn bytes_to_accept<'a>(
    n: usize,
    row: impl Fn(usize) -> &'a [u32],
    dead: u32,
    accepting: impl Fn(usize) -> bool,
) -> Vec<u32> {
    // Predecessors in compressed rows: `preds[first[t]..first[t + 1]]`.
    let mut first = vec![0u32; n + 1];
    for s in 0..n {
        for &t in row(s) {
            if t != dead {
                first[t as usize + 1] += 1;
            }
        }
    }
    for i in 0..n {
        first[i + 1] += first[i];
    }
    let mut fill = first.clone();
    let mut preds = vec![0u32; first[n] as usize];
    for s in 0..n {
        for &t in row(s) {
            if t != dead {
                preds[fill[t as usize] as usize] = s as u32;
                fill[t as usize] += 1;
            }
        }
    }
    let mut dist = vec![u32::MAX; n];
    // Breadth-first from the accepting states; `queue[..head]` are done.
    let mut queue: Vec<u32> = (0..n as u32).filter(|&s| accepting(s as usize)).collect();
    for &s in &queue {
        dist[s as usize] = 0;
    }
    let mut head = 0;
    while let Some(&s) = queue.get(head) {
        head += 1;
        let d = dist[s as usize] + 1;
        for &p in &preds[first[s as usize] as usize..first[s as usize + 1] as usize] {
            if dist[p as usize] == u32::MAX {
                dist[p as usize] = d;
                queue.push(p);
            }
        }
    }
    dist
}

#[cfg(test)]
mod tests {
    #[test]
    fn distances_follow_the_shortest_path_and_skip_dead_ends() {
        // 0 -a-> 1 -b-> 2 (accepting); 0 -c-> 2; 3 leads only to itself.
        let dead = u32::MAX;
        let rows = [[1, 2], [2, dead], [dead, dead], [3, dead]];
        let dist = super::bytes_to_accept(4, |s| &rows[s][..], dead, |s| s == 2);
        assert_eq!(dist, vec![1, 1, 0, u32::MAX]);
    }
}
