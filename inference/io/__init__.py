"""Input and output: photos (``images``), clips (``frames``) and the result file (``result``)."""
