"""`data info` on the real datasets: the numbers the issue names, as the CLI contract prints them."""

from __future__ import annotations

from transferdet.data.validation import PROBLEM_KEYS


def test_bccd_counts(cli, bccd):
    result = cli("data", "info", bccd, "--json")
    assert result.code == 0, result.err
    info = result.json()
    assert info["format"] == "voc"
    splits = info["splits"]
    # ImageSets/Main has train, val, trainval (= train + val, so dropped) and test
    assert list(splits) == ["train", "val", "test"]
    assert sum(s["images"] for s in splits.values()) == 364
    assert sum(s["boxes"] for s in splits.values()) == 4888
    assert info["classes"] == ["Platelets", "RBC", "WBC"]
    assert sum(s["problems"]["zero_area"] for s in splits.values()) == 2
    for split in splits.values():
        assert set(split["problems"]) == set(PROBLEM_KEYS)
        assert split["classes"] == ["Platelets", "RBC", "WBC"]
        assert sum(split["boxes_per_class"].values()) == split["boxes"]
        for key in PROBLEM_KEYS:
            if key != "zero_area":
                assert split["problems"][key] == 0


def test_chess_counts(cli, chess):
    info = cli("data", "info", chess, "--json").json()
    assert info["format"] == "coco"
    splits = info["splits"]
    assert list(splits) == ["train", "valid", "test"]
    assert [s["images"] for s in splits.values()] == [202, 58, 29]
    assert sum(s["images"] for s in splits.values()) == 289
    # 14 categories: the unused Roboflow placeholder 'pieces' (id 0), the 12 pieces, and a stray
    # 'bishop' category that holds exactly one box in train.
    assert len(info["classes"]) == 14
    assert info["classes_without_boxes"] == ["pieces"]
    pieces = [c for c in info["classes"] if c.startswith(("black-", "white-"))]
    assert len(pieces) == 12
    for name in ("valid", "test"):
        with_boxes = [c for c, n in splits[name]["boxes_per_class"].items() if n > 0]
        assert sorted(with_boxes) == sorted(pieces)
    assert splits["train"]["boxes_per_class"]["bishop"] == 1
    assert splits["test"]["problems"]["empty_image"] == 1
    assert splits["train"]["problems"]["empty_image"] == 0
    assert sum(s["boxes"] for s in splits.values()) == 2870


def test_split_option_and_table(cli, bccd):
    result = cli("data", "info", bccd, "--split", "train+val", "--json")
    assert list(result.json()["splits"]) == ["train+val"]
    assert result.json()["splits"]["train+val"]["images"] == 292
    table = cli("data", "info", bccd)
    assert table.code == 0 and "RBC" in table.out and "zero area" in table.out
    missing = cli("data", "info", bccd, "--split", "nope")
    assert missing.code == 2 and "no split 'nope'" in missing.err


def test_bccd_csv_export_matches_voc(bccd):
    """bccd ships test.csv (columns filename,cell_type,xmin,xmax,ymin,ymax): same boxes as the XML."""
    from transferdet.data import formats

    voc = formats.read(bccd)
    csv = formats.read(bccd / "test.csv")
    assert csv.source_format == "csv"
    assert csv.num_boxes() == voc.num_boxes() == 4888

    def boxes_by_image(dataset):
        return {
            r.file_name: sorted(
                (dataset.classes[label], *b) for b, label in zip(r.boxes.tolist(), r.labels, strict=True)
            )
            for r in dataset.records()
        }

    assert boxes_by_image(csv) == boxes_by_image(voc)
    # images were found in BCCD/JPEGImages and their sizes read from the headers
    assert all(r.path.is_file() for r in csv.records())
