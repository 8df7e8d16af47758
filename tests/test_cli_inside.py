"""``textgen explain`` and ``textgen novelty`` on a tiny run trained through the CLI."""

import json
import shutil

import pytest

from textgen.cli import main

TEXT = (
    "<p>Sonnet 18</script> & co.\n"
    + "Shall I compare thee to a summer's day?\nThou art more lovely and more temperate.\n" * 30
)
TINY = [
    *("--embed-dim", "8", "--hidden-size", "16", "--num-layers", "1", "--batch-size", "4"),
    *("--seq-len", "16", "--eval-every", "2", "--device", "cpu", "--quiet"),
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(run folder, cache folder): two training steps on TEXT."""
    root = tmp_path_factory.mktemp("inside")
    text_file = root / "sonnet.txt"
    text_file.write_text(TEXT, encoding="utf-8")
    cache = root / "cache"
    out = root / "run"
    argv = ["train", text_file, "--out", out, "--max-steps", "2", "--cache-dir", cache, *TINY]
    assert main([str(a) for a in argv]) == 0
    return out, cache


def run(argv, capsys):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_explain_json_has_the_documented_shape_and_matches_evaluate(trained, tmp_path, capsys):
    out, cache = trained
    text = "Thou art more lovely"
    path = tmp_path / "line.txt"
    path.write_text(text, encoding="utf-8")
    code, stdout, err = run(["explain", out, "--file", path, "--json", "--device", "cpu"], capsys)
    assert code == 0, err
    result = json.loads(stdout)
    assert sorted(result) == ["bits_per_char", "mean_surprisal", "tokens"]
    assert [t["token"] for t in result["tokens"]] == list(text)
    for t, token in enumerate(result["tokens"]):
        assert sorted(token) == ["index", "saliency", "surprisal", "token", "top"]
        assert token["index"] == t and len(token["saliency"]) == t
        assert len(token["top"]) == (5 if t else 0)
    assert result["tokens"][0]["surprisal"] is None
    evaluate = ["evaluate", out, path, "--json", "--batch-size", "1", "--cache-dir", cache]
    code, stdout, err = run([*evaluate, "--device", "cpu"], capsys)
    assert code == 0, err
    metrics = json.loads(stdout)
    assert result["mean_surprisal"] == pytest.approx(metrics["loss"], rel=1e-5)
    assert result["bits_per_char"] == pytest.approx(metrics["bits_per_char"], rel=1e-5)


def test_explain_text_report_and_window(trained, capsys):
    out, _ = trained
    argv = ["explain", out, "--text", "Shall I compare", "--window", "3", "--device", "cpu"]
    code, stdout, err = run(argv, capsys)
    assert code == 0, err
    lines = stdout.splitlines()
    assert len(lines) == 1 + len("Shall I compare") + 1
    assert lines[-1].startswith("mean surprisal ")
    code, stdout, _ = run([*argv, "--json"], capsys)
    assert [len(t["saliency"]) for t in json.loads(stdout)["tokens"]][:6] == [0, 1, 2, 3, 3, 3]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--file", "{tmp}/missing.txt"], "text file {tmp}/missing.txt does not exist"),
        (["--text", ""], "text encodes to no tokens"),
        (["--text", "Shall", "--window", "0"], "--window must be an integer >= 1"),
        (["--text", "Shall \u2603"], "not in the vocabulary"),
    ],
)
def test_explain_errors_are_one_line(trained, tmp_path, capsys, argv, message):
    out, _ = trained
    argv = [a.format(tmp=tmp_path) for a in argv]
    code, _, err = run(["explain", out, *argv, "--device", "cpu"], capsys)
    assert code == 1
    assert message.format(tmp=tmp_path) in err
    assert len(err.strip().splitlines()) == 1


def _browser():
    """A headless Chromium driven by Selenium, or a skip saying what is missing."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip(
            "no headless browser: install chromium and chromedriver "
            "(Debian: apt-get install chromium chromium-driver)"
        )
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver_path), options=options)


@pytest.mark.slow
def test_the_html_page_works_in_a_headless_browser(trained, tmp_path, capsys):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    out, _ = trained
    page = tmp_path / "explain.html"
    text = "Thou art</script> & <p>"  # markup in the text must stay text
    argv = ["explain", out, "--text", text, "--html", page, "--json", "--device", "cpu"]
    code, stdout, err = run(argv, capsys)
    assert code == 0, err
    expected = json.loads(stdout)["tokens"]
    assert "http" not in page.read_text(encoding="utf-8").replace("http-equiv", "")
    browser = _browser()
    try:
        browser.get(page.as_uri())
        spans = browser.find_elements(By.CSS_SELECTOR, "#text span")
        assert "".join(span.text for span in spans) == text
        ActionChains(browser).move_to_element(spans[9]).perform()
        shown = [span.get_attribute("data-saliency") for span in spans]
        assert [float(v) for v in shown[:9]] == pytest.approx(expected[9]["saliency"], rel=1e-6)
        assert shown[9:] == [None] * (len(text) - 9)
        assert "surprisal" in browser.find_element(By.ID, "surprisal").text
        rows = browser.find_elements(By.CSS_SELECTOR, "#top tr")
        assert len(rows) == 5
        assert rows[0].text.startswith(json.dumps(expected[9]["top"][0]["token"]))
        spans[3].click()  # pinned: hovering elsewhere keeps token 3
        ActionChains(browser).move_to_element(spans[12]).perform()
        assert spans[3].get_attribute("class") == "current"
        assert [s.get_attribute("data-saliency") is not None for s in spans[:5]] == [
            True,
            True,
            True,
            False,
            False,
        ]
    finally:
        browser.quit()


def test_novelty_finds_a_copied_line_and_reuses_its_index(trained, tmp_path, capsys):
    out, cache = trained
    copied = TEXT[40:120]
    path = tmp_path / "sample.txt"
    path.write_text("&&&&" + copied + "&&", encoding="utf-8")  # TEXT never repeats "&"
    code, stdout, err = run(["novelty", out, path, "--json"], capsys)
    assert code == 0, err
    report = json.loads(stdout)
    assert report["longest"]["text_char"] == 4
    assert report["longest"]["text"] == copied
    assert report["spans"] == [report["longest"]]
    assert report["copied_fraction"] == pytest.approx(80 / 86)
    assert len(list(cache.glob("*/train.suffix-array.npy"))) == 1
    code, stdout, err = run(["novelty", out, path, "--min-span", "100"], capsys)
    assert code == 0, err
    assert stdout.startswith("longest copied span 80 chars (80 tokens) at char 4")
    assert "copied 0.0% of 86 chars in 0 spans of >= 100 chars" in stdout
    code, _, err = run(["novelty", out, path, "--min-span", "0"], capsys)
    assert code == 1 and "--min-span must be an integer >= 1" in err


def test_generate_novelty_reports_each_sample_on_stderr(trained, capsys):
    from textgen.novelty import NoveltyIndex

    out, _ = trained
    index = NoveltyIndex.for_run(out)
    base = ["generate", out, "--prompt", "Shall", "--max-new-tokens", "40", "--device", "cpu"]
    code, stdout, err = run([*base, "--seed", "1", "--novelty"], capsys)  # streamed
    assert code == 0, err
    sample = stdout.removesuffix("\n").removeprefix("Shall")
    assert err == f"novelty: {index.report(sample).summary()}\n"
    argv = [*base, "--num-samples", "2", "--novelty", "--novelty-min-span", "3"]
    code, stdout, err = run(argv, capsys)
    assert code == 0, err
    lines = err.splitlines()
    assert len(lines) == 2 and all(line.startswith("novelty: ") for line in lines)
    assert "of >= 3 chars" in lines[0]  # "1 span" or "N spans": a sample may end early (eos)
    code, stdout, err = run([*base, "--novelty", "--novelty-min-span", "0"], capsys)
    assert (code, stdout) == (1, "")
    assert "--novelty-min-span must be >= 1, got 0" in err


def test_generate_jsonl_carries_the_novelty_report_as_a_field(trained, capsys):
    from textgen.novelty import NoveltyIndex

    out, _ = trained
    argv = ["generate", out, "--prompt", "Shall", "--max-new-tokens", "30", "--device", "cpu"]
    code, stdout, err = run(
        [*argv, "--num-samples", "2", "--seed", "3", "--jsonl", "--novelty"], capsys
    )
    assert code == 0, err
    assert err == ""  # the report is in the lines, not on stderr
    index = NoveltyIndex.for_run(out)
    for line in stdout.splitlines():
        record = json.loads(line)
        report = index.report(record["text"])
        assert record["novelty"] == {
            "longest_chars": report.longest.num_chars if report.longest else 0,
            "longest_tokens": report.longest.num_tokens if report.longest else 0,
            "longest_text_char": report.longest.text_char if report.longest else None,
            "longest_train_char": report.longest.train_char if report.longest else None,
            "copied_fraction": report.copied_fraction,
            "copied_spans": len(report.spans),
            "min_span": 50,
        }
