"""Transfer Learning Lab engine: scan data, build VGG16 + head, train, explain.

Importing tlcore imports neither TensorFlow nor Streamlit; the modules that
need TensorFlow (pipeline, model, training, inference) import it themselves.
"""

__version__ = "0.1.0"
