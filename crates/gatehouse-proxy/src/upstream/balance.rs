//! The order in which one request tries an upstream's servers.
//!
//! Least outstanding requests first, which suits app servers whose cost per request varies
//! (a slow report should not queue fast pages behind it). Ties rotate so equal servers share the
//! load. Servers that are down go last but are still tried: when every server looks down, trying
//! them (fail open) beats answering 502 without asking.

/// What balancing needs to know about one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Load {
    pub(crate) down: bool,
    pub(crate) outstanding: usize,
}

/// Indexes into `loads`, best first; `start` rotates among ties.
pub(crate) fn order(loads: &[Load], start: usize) -> Vec<usize> {
    let count = loads.len();
    let mut order: Vec<usize> = (0..count)
        .map(|i| (start.wrapping_add(i)) % count)
        .collect();
    // A stable sort keeps the rotated order among equals.
    order.sort_by_key(|&i| (loads[i].down, loads[i].outstanding));
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn up(outstanding: usize) -> Load {
        Load {
            down: false,
            outstanding,
        }
    }

    const fn down(outstanding: usize) -> Load {
        Load {
            down: true,
            outstanding,
        }
    }

    #[test]
    fn fewest_outstanding_comes_first() {
        assert_eq!(order(&[up(3), up(1), up(2)], 0), [1, 2, 0]);
    }

    #[test]
    fn ties_rotate_with_start() {
        let loads = [up(0), up(0), up(0)];
        assert_eq!(order(&loads, 0), [0, 1, 2]);
        assert_eq!(order(&loads, 1), [1, 2, 0]);
        assert_eq!(order(&loads, 5), [2, 0, 1]);
    }

    #[test]
    fn down_servers_go_last_but_stay_in_the_list() {
        assert_eq!(order(&[down(0), up(7), down(0)], 0), [1, 0, 2]);
        assert_eq!(order(&[down(2), down(1)], 0), [1, 0]);
    }

    #[test]
    fn no_servers_no_order() {
        assert!(order(&[], 3).is_empty());
    }
}
