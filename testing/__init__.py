"""Test-support code for the modal-offload project (not installed; import from the repo root)."""
