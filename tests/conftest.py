import sys
from pathlib import Path

import torch

# tests/nn/study_format.py: the study's saved-network layout (SPEC 7), shared by tests
sys.path.insert(0, str(Path(__file__).parent / "nn"))
# tests/experiments/studyhelpers.py: a tiny study and a store snapshot shared by those tests
sys.path.insert(0, str(Path(__file__).parent / "experiments"))
torch.set_num_threads(1)  # tiny test models: threads only add contention
