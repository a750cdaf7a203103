//! Static checks of the dashboards' layout and annotations: panels on the 24-column grid without
//! overlaps, and annotations (alerts, targets down, plugin reloads) through the datasource
//! variable.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
use std::collections::BTreeMap;

use e2e::dashboard::Dashboard;

fn dashboards() -> Vec<Dashboard> {
    Dashboard::load_all().expect("dashboards load")
}

#[test]
fn panels_are_on_the_grid_without_overlaps() {
    for d in dashboards() {
        let mut cells: BTreeMap<(i64, i64), String> = BTreeMap::new();
        for p in d.panels() {
            let g = &p["gridPos"];
            let (x, y, w, h) = (
                g["x"].as_i64(),
                g["y"].as_i64(),
                g["w"].as_i64(),
                g["h"].as_i64(),
            );
            let (Some(x), Some(y), Some(w), Some(h)) = (x, y, w, h) else {
                panic!("{}: panel {} gridPos not integers: {g}", d.file, p["title"]);
            };
            assert!(
                (1..=24).contains(&w) && x >= 0 && x + w <= 24 && h >= 1 && y >= 0,
                "{}: {} {g}",
                d.file,
                p["title"]
            );
            for cx in x..x + w {
                for cy in y..y + h {
                    let title = p["title"].as_str().unwrap_or("").to_owned();
                    if let Some(other) = cells.insert((cx, cy), title.clone()) {
                        panic!(
                            "{}: panels {other:?} and {title:?} overlap at ({cx},{cy})",
                            d.file
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn annotations_show_alerts_and_restarts_through_the_datasource_variable() {
    for d in dashboards() {
        let list = d.json["annotations"]["list"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            list.iter().any(|a| a["builtIn"] == 1),
            "{}: built-in annotation",
            d.file
        );
        let prom: Vec<_> = list.iter().filter(|a| a.get("expr").is_some()).collect();
        assert!(
            prom.iter()
                .any(|a| a["expr"].as_str().unwrap_or("").contains("ALERTS")),
            "{}: alert annotation",
            d.file
        );
        for a in prom {
            assert_eq!(
                a["datasource"]["uid"], "${datasource}",
                "{}: annotation {}",
                d.file, a["name"]
            );
        }
    }
}
