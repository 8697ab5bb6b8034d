"""Data set-up (pneumocxr.datasets.acquire.setup, .sources, .derive, and `pneumocxr data setup`).

Linking is tested on a small shared folder built in tmp_path and, for equivalence, against the
real ../shared folder; downloading against a real HTTP server on 127.0.0.1 that serves the real
NIH metadata file from the data root plus small archives made here.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from local_http import LocalServer, tar_gz, zip_bytes
from pneumocxr.cli import main
from pneumocxr.datasets.acquire.derive import DeriveError, derive_file
from pneumocxr.datasets.acquire.setup import ensure_link, find_shared, setup_data
from pneumocxr.datasets.acquire.sources import SourceTableError, load_sources, parse_only, select_sources

WEIGHTS = "weights/vgg16_imagenet_notop.weights.h5"


@pytest.fixture
def shared(tmp_path) -> Path:
    """A miniature shared folder: data/{nih,kermany,test_dicoms,README.md} and weights/."""
    root = tmp_path / "shared"
    for relative, text in {
        "data/nih/sample_labels.csv": "Image Index\n",
        "data/nih/test_list.txt": "a.png\n",
        "data/kermany/train/NORMAL/IM-0001-0001.jpeg": "jpeg",
        "data/test_dicoms/test1.dcm": "dcm",
        "data/README.md": "readme",
        WEIGHTS: "h5",
    }.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    return root


def actions(steps, project: Path) -> dict[str, str]:
    """path relative to the project folder (``data/...`` inside the data root) -> action."""
    return {s.path.removeprefix(f"{project}/"): s.action for s in steps}


def test_setup_links_each_shared_dataset_the_weights_and_the_project_files(tmp_path, shared):
    project = tmp_path / "project"
    steps = setup_data(project / "data", shared, project_dir=project)
    data = project / "data"
    for name in ("nih", "kermany", "test_dicoms", "README.md"):
        assert (data / name).is_symlink() and (data / name).resolve() == (shared / "data" / name).resolve()
    assert (data / WEIGHTS).resolve() == (shared / WEIGHTS).resolve()
    assert str((project / "test_dicoms").readlink()) == "data/test_dicoms"  # relative: survives moving the project
    assert (project / "sample_labels.csv").read_text() == "Image Index\n"
    linked = actions(steps, project)
    names = (
        "data/nih",
        "data/kermany",
        "data/test_dicoms",
        "data/README.md",
        f"data/{WEIGHTS}",
        "test_dicoms",
        "sample_labels.csv",
    )
    assert {linked[k] for k in names} == {"linked"}
    assert (
        linked["data/rsna/stage_2_detailed_class_info.csv"] == "manual"
    )  # not in this shared folder, nor downloadable


def test_second_run_changes_nothing(tmp_path, shared):
    project = tmp_path / "project"
    setup_data(project / "data", shared, project_dir=project)
    before = {p: (p.readlink() if p.is_symlink() else None) for p in (project / "data").rglob("*")}
    again = setup_data(project / "data", shared, project_dir=project)
    assert {s.action for s in again} <= {"present", "missing", "manual"}
    assert {p: (p.readlink() if p.is_symlink() else None) for p in (project / "data").rglob("*")} == before


def test_real_folders_and_foreign_links_are_never_replaced(tmp_path, shared):
    data = tmp_path / "project" / "data"
    (data / "kermany").mkdir(parents=True)
    (data / "kermany" / "mine.jpeg").write_text("user data")
    elsewhere = tmp_path / "my_nih"
    elsewhere.mkdir()
    (data / "nih").symlink_to(elsewhere)
    (data / "test_dicoms").symlink_to(tmp_path / "gone")  # dangling: safe to replace
    steps = actions(setup_data(data, shared, download="never", project_dir=tmp_path / "project"), tmp_path / "project")
    assert steps["data/kermany"] == "kept" and (data / "kermany" / "mine.jpeg").read_text() == "user data"
    assert steps["data/nih"] == "kept" and (data / "nih").resolve() == elsewhere
    assert steps["data/test_dicoms"] == "relinked" and (data / "test_dicoms" / "test1.dcm").exists()


def test_only_links_the_chosen_groups(tmp_path, shared):
    data = tmp_path / "data"
    setup_data(data, shared, only={"kermany"}, project_dir=tmp_path)
    assert sorted(p.name for p in data.iterdir()) == ["kermany"]
    with pytest.raises(SourceTableError, match=r"unknown group\(s\) \['kermani'\] in --only"):
        parse_only("kermany,kermani", load_sources())


def test_find_shared_argument_environment_and_errors(tmp_path, shared, monkeypatch):
    monkeypatch.delenv("PNEUMOCXR_SHARED", raising=False)
    assert find_shared(shared) == shared.absolute()
    monkeypatch.setenv("PNEUMOCXR_SHARED", str(shared))
    assert find_shared() == shared.absolute()
    with pytest.raises(FileNotFoundError, match=r"nowhere: shared folder has no data/ folder"):
        find_shared(tmp_path / "nowhere")


def test_ensure_link_reports_without_touching(tmp_path):
    (tmp_path / "target").write_text("t")
    (tmp_path / "real").write_text("r")
    assert ensure_link(tmp_path / "real", tmp_path / "target").action == "kept"
    assert (tmp_path / "real").read_text() == "r"
    assert ensure_link(tmp_path / "new", tmp_path / "target").action == "linked"
    assert ensure_link(tmp_path / "new", tmp_path / "target").action == "present"


def test_links_to_the_real_shared_folder_match_the_project_data_root(real_data, tmp_path):
    """Real data: a fresh set-up from ../shared resolves every entry exactly as the project's data/ does."""
    shared = find_shared()
    assert shared is not None, "../shared beside the project is expected on this machine"
    setup_data(tmp_path / "data", shared, download="never", project_dir=tmp_path)
    for entry in real_data.iterdir():
        if entry.name != "weights":  # data/weights may be a link to the folder; compare the file below
            assert (tmp_path / "data" / entry.name).resolve() == entry.resolve(), entry.name
    assert (tmp_path / "data" / WEIGHTS).resolve() == (real_data / WEIGHTS).resolve() == (shared / WEIGHTS).resolve()
    assert sorted(p.name for p in (tmp_path / "test_dicoms").iterdir()) == [f"test{i}.dcm" for i in range(1, 7)]


# --- the source table -------------------------------------------------------------------------------


def test_package_source_table_is_consistent():
    table = load_sources()
    assert {s.group for s in table.sources} | {f.group for f in table.shared_files} == set(table.groups)
    assert all(s.url.startswith("https://") for s in table.sources if s.url)
    images = select_sources(table, {"nih-images"})
    assert [s.into for s in images] == [f"nih/images_{i:03d}" for i in range(1, 13)]
    assert all(s.md5 and s.extract == "tar.gz" and "nihcc.box.com" in s.url for s in images)
    wheel = [s for s in table.sources if s.archive_name.startswith("torchxrayvision")]
    assert {s.target for s in wheel} >= {"nih/Data_Entry_2017_v2020.csv.gz", "rsna/stage_2_train_labels.csv"}


def test_bad_source_table_names_the_file_and_entry(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[groups.g]\nrequired = true\n[[source]]\nname = "x"\ngroup = "g"\nurl = "https://a"\n'
        'target = "x.csv"\nsha265 = "typo"\n'
    )
    with pytest.raises(SourceTableError, match=r"bad.toml \[\[source\]\] #1: unknown key\(s\) \['sha265'\]"):
        load_sources(bad)
    bad.write_text('[groups.g]\n[[source]]\nname = "x"\ngroup = "g"\nurl = "https://a"\ntarget = "../x.csv"\n')
    with pytest.raises(SourceTableError, match=r"'x'.*'\.\./x\.csv' must be a path inside the data root"):
        load_sources(bad)


# --- the official NIH split lists, rebuilt --------------------------------------------------------


def test_rebuilt_nih_split_lists_are_nihs_files_byte_for_byte(real_data, tmp_path):
    """Real data: both lists rebuilt from the metadata equal NIH's files (sha256 from the table)."""
    table = {s.name: s for s in load_sources().sources}
    for name, real in (("nih-test-list", "test_list.txt"), ("nih-train-val-list", "train_val_list.txt")):
        out = derive_file(table[name].derive, real_data, tmp_path / real, table[name].sha256)
        assert out.read_bytes() == (real_data / "nih" / real).read_bytes()
    with pytest.raises(DeriveError, match=r"test_list.txt: rebuilt file has sha256 .*, expected 0+"):
        derive_file("nih-test-list", real_data, tmp_path / "test_list.txt", "0" * 64)


# --- downloading (no shared folder) ------------------------------------------------------------------


def served_table(tmp_path: Path, server: LocalServer, real_data: Path) -> Path:
    """A source table pointing at the local server: the real NIH metadata inside a 'wheel', the
    derived split lists, a tar.gz of PNGs, a plain file with sha256 and a manual file."""
    metadata = (real_data / "nih" / "Data_Entry_2017_v2020.csv.gz").read_bytes()
    wheel = zip_bytes(
        {
            "pkg/data/Data_Entry_2017_v2020.csv.gz": metadata,
            "pkg/data/labels.csv.zip": zip_bytes({"stage_2_train_labels.csv": b"patientId,Target\na,0\n"}),
        }
    )
    server.files.update(
        {"/pkg.whl": wheel, "/images_001.tar.gz": tar_gz({"images/00000001_000.png": b"p"}), "/npz": b"npz-bytes"}
    )
    sha = hashlib.sha256(wheel).hexdigest()
    lists = {s.name: s for s in load_sources().sources}
    text = f"""
[groups.nih-metadata]
required = true
[groups.nih-images]
[groups.rsna]
[groups.pneumoniamnist]
[[source]]
name = "nih-data-entry"
group = "nih-metadata"
url = "{server.url("/pkg.whl")}"
archive = "pkg.whl"
sha256 = "{sha}"
extract = "zip"
member = "pkg/data/Data_Entry_2017_v2020.csv.gz"
target = "nih/Data_Entry_2017_v2020.csv.gz"
[[source]]
name = "nih-test-list"
group = "nih-metadata"
derive = "nih-test-list"
target = "nih/test_list.txt"
sha256 = "{lists["nih-test-list"].sha256}"
[[source]]
name = "nih-train-val-list"
group = "nih-metadata"
derive = "nih-train-val-list"
target = "nih/train_val_list.txt"
sha256 = "{lists["nih-train-val-list"].sha256}"
[[source]]
name = "nih-images-001"
group = "nih-images"
url = "{server.url("/images_001.tar.gz")}"
extract = "tar.gz"
into = "nih/images_001"
[[source]]
name = "rsna-train-labels"
group = "rsna"
url = "{server.url("/pkg.whl")}"
archive = "pkg.whl"
sha256 = "{sha}"
extract = "zip"
member = "pkg/data/labels.csv.zip!stage_2_train_labels.csv"
target = "rsna/stage_2_train_labels.csv"
[[source]]
name = "rsna-class-info"
group = "rsna"
manual = "from Kaggle: copy it to DATA/rsna/"
target = "rsna/stage_2_detailed_class_info.csv"
[[source]]
name = "pneumoniamnist"
group = "pneumoniamnist"
url = "{server.url("/npz")}"
target = "pneumoniamnist/pneumoniamnist.npz"
md5 = "{hashlib.md5(b"npz-bytes").hexdigest()}"
[project_links]
"sample_labels.csv" = "nih/sample_labels.csv"
"""
    path = tmp_path / "sources.toml"
    path.write_text(text)
    return path


@pytest.mark.network
def test_download_mode_fills_the_root_then_is_idempotent(real_data, tmp_path):
    with LocalServer() as server:
        table = load_sources(served_table(tmp_path, server, real_data))
        root = tmp_path / "data"
        steps = setup_data(root, None, table=table, project_dir=tmp_path, progress=False, backoff=0.0)
        done = {Path(s.path).name: s.action for s in steps}
        assert done["Data_Entry_2017_v2020.csv.gz"] == "unpacked" and done["test_list.txt"] == "derived"
        assert done["images_001"] == "unpacked" and done["stage_2_train_labels.csv"] == "unpacked"
        assert done["pneumoniamnist.npz"] == "downloaded" and done["stage_2_detailed_class_info.csv"] == "manual"
        assert done["sample_labels.csv"] == "missing"  # its target is absent, so no dangling link is made
        for name in ("Data_Entry_2017_v2020.csv.gz", "test_list.txt", "train_val_list.txt"):
            assert (root / "nih" / name).read_bytes() == (real_data / "nih" / name).read_bytes()
        assert (root / "nih" / "images_001" / "images" / "00000001_000.png").read_bytes() == b"p"
        assert (root / "rsna" / "stage_2_train_labels.csv").read_text().startswith("patientId,Target")
        assert [path for path, _ in server.requests].count("/pkg.whl") == 1  # one archive, two members
        assert not list((root / "downloads").iterdir())  # archives deleted once unpacked
        requests = len(server.requests)
        again = setup_data(root, None, table=table, project_dir=tmp_path, progress=False)
        assert {s.action for s in again} == {"present", "manual", "missing"} and len(server.requests) == requests


@pytest.mark.network
def test_always_mode_adds_downloads_beside_linked_shared_files(real_data, tmp_path, shared):
    with LocalServer() as server:
        table = load_sources(served_table(tmp_path, server, real_data))
        root = tmp_path / "data"
        steps = setup_data(
            root, shared, download="always", only={"nih-images"}, table=table, project_dir=tmp_path, progress=False
        )
        assert "expanded" in {s.action for s in steps}
        assert not (root / "nih").is_symlink() and (root / "nih" / "test_list.txt").is_symlink()
        assert (root / "nih" / "images_001" / "images" / "00000001_000.png").exists()
        assert not (shared / "data" / "nih" / "images_001").exists()  # nothing written into the shared folder


@pytest.mark.network
def test_failed_download_is_reported_and_the_cli_exits_1(real_data, tmp_path, shared, capsys, monkeypatch):
    with LocalServer() as server:
        table_path = served_table(tmp_path, server, real_data)
        server.files.pop("/npz")
        monkeypatch.setattr("pneumocxr.datasets.acquire.sources.SOURCES_TOML", table_path)
        status = main(
            [
                "data",
                "setup",
                "--root",
                str(tmp_path / "data"),
                "--shared",
                str(shared),
                "--project",
                str(tmp_path),
                "--download",
                "always",
                "--only",
                "pneumoniamnist",
                "--retries",
                "1",
            ]
        )
    out = capsys.readouterr().out
    assert status == 1 and "failed" in out and "/npz: HTTP 404" in out


def test_cli_setup_is_quiet_when_everything_is_linked(tmp_path, shared, capsys):
    args = ["data", "setup", "--root", str(tmp_path / "data"), "--shared", str(shared), "--project", str(tmp_path)]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args + ["--only", "kermany,weights"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines == [f"data setup: {tmp_path / 'data'} (linked from {shared}): 4 present"]  # 2 links + 2 project links


def test_local_origin_finds_the_repository_a_clone_came_from(tmp_path):
    import subprocess

    from pneumocxr.datasets.acquire.setup import local_origin

    source = tmp_path / "main"
    source.mkdir()
    subprocess.run(["git", "init", "-q", str(source)], check=True)
    subprocess.run(["git", "clone", "-q", str(source), str(tmp_path / "clone")], check=True, capture_output=True)
    assert local_origin(tmp_path / "clone") == source
    assert local_origin(source) is None
