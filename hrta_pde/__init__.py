"""hrta_pde: the Homotopy Relaxation Training Algorithm for DeepXDE (PyTorch backend)."""
from hrta_pde._backend import BackendError, import_deepxde, resolve_device, resolve_dtype

import_deepxde()  # select the PyTorch backend before anything else imports deepxde

__version__ = "0.1.0"
