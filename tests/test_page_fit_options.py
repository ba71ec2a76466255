"""The controls for fit's options (AppTest over the whole app): the Model page's toggles and the Dataset page's
"balance classes" next to the imbalance warning set the TrainConfig through dashboard.state's mapping."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from dashboard.state import SOURCE_FOLDER, K, state_to_config
from tests.conftest import ROOT
from tests.helpers import make_dataset_folder, make_image


def _app(page: str | None = None, **state) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def test_model_page_controls_set_the_options_in_the_config():
    at = _app("pages/model.py")
    config = state_to_config(at.session_state)
    # Early stopping is on by default (where the validation split can judge it: tlcore.schedule).
    assert (config.balance_classes, config.early_stopping_patience, config.reduce_lr_on_plateau) == (False, 5, False)
    at.toggle(key=K.early_stopping).set_value(False).run()
    assert not [n for n in at.number_input if n.key == K.patience]  # patience shows only with early stopping on
    assert state_to_config(at.session_state).early_stopping_patience is None
    at.toggle(key=K.balance_classes).set_value(True)
    at.toggle(key=K.early_stopping).set_value(True)
    at.toggle(key=K.reduce_lr).set_value(True).run()
    assert not at.exception, at.exception
    at.number_input(key=K.patience).set_value(7).run()
    config = state_to_config(at.session_state)
    assert (config.balance_classes, config.early_stopping_patience, config.reduce_lr_on_plateau) == (True, 7, True)
    assert any("Ready to train" in s.value for s in at.success)


def test_the_imbalance_warning_offers_balance_classes(tmp_path):
    root = make_dataset_folder(tmp_path / "data", n_train=4, n_val=2)
    for i in range(8):  # cats: 12 training images, dogs: 4
        make_image((200, 60, 50), seed=100 + i).save(root / "train" / "cats" / f"extra_{i}.png")
    at = _app(**{K.source: SOURCE_FOLDER, K.folder: str(root)})
    assert any("Imbalanced classes" in w.value for w in at.warning)
    at.toggle(key=K.balance_classes).set_value(True).run()
    assert not at.exception, at.exception
    at.switch_page("pages/model.py").run()  # the choice is the config's, whichever page made it
    assert at.toggle(key=K.balance_classes).value is True
    assert state_to_config(at.session_state).balance_classes


def test_a_balanced_dataset_offers_no_balance_toggle_on_its_page():
    at = _app()
    assert not [t for t in at.toggle if t.key == K.balance_classes]
