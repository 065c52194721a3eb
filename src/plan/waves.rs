//! Cutting one stage (the containers of one role in one group) into waves
//! under the limits. Replica sets that fit whole are kept together.

use std::collections::HashMap;

/// The limits one wave must respect.
#[derive(Debug, Clone, Copy)]
pub struct WaveLimits {
    /// Max containers of one host in one wave.
    pub max_per_host: u32,
    /// Max members of one replica set in one wave (`u32::MAX`: no limit).
    pub max_per_replset: u32,
    /// Max containers in one wave.
    pub max_wave_size: u32,
}

#[derive(Default)]
struct Open {
    members: Vec<u32>,
    per_host: HashMap<u32, u32>,
    per_rs: HashMap<u32, u32>,
}

impl Open {
    fn fits(&self, unit: &[u32], host_of: &[u32], rs_of: &[Option<u32>], l: &WaveLimits) -> bool {
        if self.members.len() + unit.len() > l.max_wave_size as usize {
            return false;
        }
        // Units are small (one replica set at most): count pairwise.
        unit.iter().enumerate().all(|(k, &c)| {
            let h = host_of[c as usize];
            let same_host = unit[..=k]
                .iter()
                .filter(|&&o| host_of[o as usize] == h)
                .count() as u32;
            let host_ok = self.per_host.get(&h).copied().unwrap_or(0) + same_host <= l.max_per_host;
            let rs_ok = match rs_of[c as usize] {
                None => true,
                Some(rs) => {
                    let same_rs = unit[..=k]
                        .iter()
                        .filter(|&&o| rs_of[o as usize] == Some(rs))
                        .count() as u32;
                    self.per_rs
                        .get(&rs)
                        .copied()
                        .unwrap_or(0)
                        .saturating_add(same_rs)
                        <= l.max_per_replset
                }
            };
            host_ok && rs_ok
        })
    }

    fn add(&mut self, unit: &[u32], host_of: &[u32], rs_of: &[Option<u32>]) {
        for &c in unit {
            self.members.push(c);
            *self.per_host.entry(host_of[c as usize]).or_default() += 1;
            if let Some(rs) = rs_of[c as usize] {
                *self.per_rs.entry(rs).or_default() += 1;
            }
        }
    }
}

/// First-fit: each unit goes to the earliest wave it fits. A unit is a whole
/// replica set when its size is within the per-replica-set limit, otherwise
/// one container. `stage` must be sorted so replica-set members are adjacent.
pub fn cut(stage: &[u32], host_of: &[u32], rs_of: &[Option<u32>], l: &WaveLimits) -> Vec<Vec<u32>> {
    let mut waves: Vec<Open> = Vec::new();
    // Waves before `first_open` are full by size and never fit again.
    let mut first_open = 0;
    let mut place = |unit: &[u32], waves: &mut Vec<Open>| {
        while first_open < waves.len()
            && waves[first_open].members.len() >= l.max_wave_size as usize
        {
            first_open += 1;
        }
        for w in waves[first_open..].iter_mut() {
            if w.fits(unit, host_of, rs_of, l) {
                w.add(unit, host_of, rs_of);
                return true;
            }
        }
        let mut w = Open::default();
        if !w.fits(unit, host_of, rs_of, l) {
            return false;
        }
        w.add(unit, host_of, rs_of);
        waves.push(w);
        true
    };
    let mut i = 0;
    while i < stage.len() {
        let rs = rs_of[stage[i] as usize];
        let mut j = i + 1;
        if rs.is_some() {
            while j < stage.len() && rs_of[stage[j] as usize] == rs {
                j += 1;
            }
        }
        let unit = &stage[i..j];
        let whole =
            unit.len() > 1 && unit.len() as u32 <= l.max_per_replset && place(unit, &mut waves);
        if !whole {
            // One by one; a single container always fits an empty wave
            // (every limit is at least 1).
            for c in unit {
                let ok = place(std::slice::from_ref(c), &mut waves);
                debug_assert!(ok);
            }
        }
        i = j;
    }
    waves.into_iter().map(|w| w.members).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replset_limit_spreads_members() {
        // Two replica sets of three members on three hosts.
        let host_of = vec![0, 1, 2, 0, 1, 2];
        let rs_of = vec![Some(0), Some(0), Some(0), Some(1), Some(1), Some(1)];
        let l = WaveLimits {
            max_per_host: 10,
            max_per_replset: 1,
            max_wave_size: 100,
        };
        let waves = cut(&[0, 1, 2, 3, 4, 5], &host_of, &rs_of, &l);
        assert_eq!(waves, vec![vec![0, 3], vec![1, 4], vec![2, 5]]);
    }

    #[test]
    fn whole_sets_stay_together_under_host_limit() {
        let host_of = vec![0, 1, 2, 0, 1, 2];
        let rs_of = vec![Some(0), Some(0), Some(0), Some(1), Some(1), Some(1)];
        let l = WaveLimits {
            max_per_host: 1,
            max_per_replset: u32::MAX,
            max_wave_size: 100,
        };
        let waves = cut(&[0, 1, 2, 3, 4, 5], &host_of, &rs_of, &l);
        assert_eq!(waves, vec![vec![0, 1, 2], vec![3, 4, 5]]);
    }

    #[test]
    fn wave_size_caps() {
        let host_of = vec![0; 5];
        let rs_of = vec![None; 5];
        let l = WaveLimits {
            max_per_host: 100,
            max_per_replset: 1,
            max_wave_size: 2,
        };
        assert_eq!(cut(&[0, 1, 2, 3, 4], &host_of, &rs_of, &l).len(), 3);
    }
}
