"""The latent explorer notebook runs top to bottom headless and really draws images."""

import os

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "notebooks")
EXPLORE = os.path.join(NOTEBOOKS, "explore.ipynb")


def test_explore_notebook_runs_and_draws():
    notebook = nbformat.read(EXPLORE, as_version=4)
    nbformat.validate(notebook)
    assert not any(cell.get("outputs") for cell in notebook.cells), "commit it without outputs"
    # The python3 kernelspec that ipykernel installs into sys.prefix; the kernel starts in the
    # notebooks/ folder, as in Jupyter. A failing cell raises CellExecutionError here.
    client = NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": NOTEBOOKS}}
    )
    # No stand-in for an Output widget's front end: it sends the widget's state on the shell
    # socket while nbclient awaits the cell's reply there, which then now and then goes unseen
    # until the cell's timeout (nbclient issue 312). Without it, what the widget captures lands
    # in the cell's outputs, as in a front end without widgets.
    client.widget_registry = {}
    client.execute(env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    assert not [output for output in outputs if output.output_type == "error"]
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    assert images, "the notebook drew no image"
