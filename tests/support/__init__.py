"""Helpers the tests share: throwaway servers started from the machine's binaries."""
