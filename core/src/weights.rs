//! Weight normalisation: the largest-remainder method, one function for every target.

/// Distributes `total` units over `weights` proportionally, so that the result sums to
/// exactly `total` (unless every weight is zero, when all results are zero).
///
/// - Each entry gets `floor(total * w / sum)`; the units left over go one each to the
///   entries with the largest remainders, ties broken by position (earlier first).
/// - A zero weight never receives a unit.
/// - Order of shares is preserved: `w_i >= w_j` implies `out_i >= out_j`.
pub fn largest_remainder(weights: &[u64], total: u64) -> Vec<u64> {
    let sum: u128 = weights.iter().map(|w| *w as u128).sum();
    if sum == 0 {
        return vec![0; weights.len()];
    }
    let total_w = total as u128;
    let mut out: Vec<u64> = Vec::with_capacity(weights.len());
    let mut rems: Vec<(u128, usize)> = Vec::with_capacity(weights.len());
    let mut assigned: u128 = 0;
    for (i, w) in weights.iter().enumerate() {
        let exact = total_w * (*w as u128);
        let q = exact / sum;
        out.push(q as u64);
        assigned += q;
        if *w > 0 {
            rems.push((exact % sum, i));
        }
    }
    // Largest remainder first; equal remainders: larger weight first (keeps share order),
    // then earlier position.
    rems.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then(weights[b.1].cmp(&weights[a.1]))
            .then(a.1.cmp(&b.1))
    });
    let mut left = total_w - assigned;
    for (_, i) in rems {
        if left == 0 {
            break;
        }
        out[i] += 1;
        left -= 1;
    }
    out
}

/// Scales weights down (proportionally, largest remainder) only when needed to keep every
/// weight at or below `max` — used for targets with a per-weight cap (Gateway API: 1,000,000).
/// Weights already within the cap are returned unchanged.
pub fn fit_under(weights: &[u64], max: u64) -> Vec<u64> {
    if weights.iter().all(|w| *w <= max) {
        return weights.to_vec();
    }
    largest_remainder(weights, max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn examples() {
        assert_eq!(largest_remainder(&[90, 10], 100), vec![90, 10]);
        assert_eq!(largest_remainder(&[1, 2, 3], 100), vec![17, 33, 50]);
        assert_eq!(largest_remainder(&[1000, 500], 100), vec![67, 33]);
        assert_eq!(largest_remainder(&[1, 1, 1], 100), vec![34, 33, 33]);
        assert_eq!(largest_remainder(&[1, 0], 100), vec![100, 0]);
        assert_eq!(largest_remainder(&[0, 0], 100), vec![0, 0]);
        assert_eq!(largest_remainder(&[10, 100, 1500], 1000), vec![6, 62, 932]);
    }

    proptest! {
        #[test]
        fn sums_and_order(ws in proptest::collection::vec(0u64..1_000_000_000, 1..12), total in 1u64..1_000_000) {
            let out = largest_remainder(&ws, total);
            let s: u64 = out.iter().sum();
            if ws.iter().any(|w| *w > 0) { prop_assert_eq!(s, total); } else { prop_assert_eq!(s, 0); }
            for i in 0..ws.len() {
                if ws[i] == 0 { prop_assert_eq!(out[i], 0); }
                for j in 0..ws.len() {
                    if ws[i] > ws[j] { prop_assert!(out[i] >= out[j], "{:?} -> {:?}", ws, out); }
                }
            }
        }
    }
}
