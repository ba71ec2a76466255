"""The Streamlit app renders (AppTest, no browser)."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT


def test_app_opens_on_the_dataset_page_with_the_sample_data():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30).run()
    assert not at.exception
    assert at.title[0].value == "Dataset"
    assert "animals, vehicles" in " ".join(m.value for m in at.markdown)
