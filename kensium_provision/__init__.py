"""kprov: executable provisioning checklists for Kensium POS on AWS."""

__version__ = "0.1.0"
__all__ = ["__version__"]
