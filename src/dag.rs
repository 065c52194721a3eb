//! Topological ordering of a small dependency graph (roles, waves) with cycle
//! reporting. Pure; knows nothing of containers.

use std::collections::BTreeSet;

/// A dependency cycle: `cycle[k]` waits for `cycle[k + 1]`, and the last
/// waits for the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle(pub Vec<usize>);

/// Orders nodes so each comes after all of its dependencies (`deps[i]` are
/// the nodes `i` waits for). Among ready nodes the lowest index goes first,
/// so the order is deterministic and keeps declaration order where it can.
pub fn topo_order(deps: &[Vec<usize>]) -> Result<Vec<usize>, Cycle> {
    let n = deps.len();
    let mut remaining: Vec<usize> = deps.iter().map(|d| d.len()).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, ds) in deps.iter().enumerate() {
        for &d in ds {
            dependents[d].push(i);
        }
    }
    let mut ready: BTreeSet<usize> = (0..n).filter(|&i| remaining[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &j in &dependents[i] {
            remaining[j] -= 1;
            if remaining[j] == 0 {
                ready.insert(j);
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    // Every node left has a dependency that is also left: walk those until
    // a node repeats; the walk from its first visit is a cycle.
    let start = (0..n).find(|&i| remaining[i] > 0).expect("a node is left");
    let mut path = vec![start];
    let mut seen = vec![usize::MAX; n];
    seen[start] = 0;
    loop {
        let cur = *path.last().unwrap();
        let next = *deps[cur]
            .iter()
            .find(|&&d| remaining[d] > 0)
            .expect("a left node waits for a left node");
        if seen[next] != usize::MAX {
            return Err(Cycle(path[seen[next]..].to_vec()));
        }
        seen[next] = path.len();
        path.push(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_dependencies_first() {
        // 0 waits for 2, 1 waits for 0.
        let order = topo_order(&[vec![2], vec![0], vec![]]).unwrap();
        assert_eq!(order, vec![2, 0, 1]);
    }

    #[test]
    fn reports_the_cycle() {
        // 0 -> 1 -> 2 -> 1, and 3 free.
        let Cycle(c) = topo_order(&[vec![1], vec![2], vec![1], vec![]]).unwrap_err();
        assert_eq!(c, vec![1, 2]);
    }
}
