"""The torch frontend: ``torch.nn``, snnTorch and Norse models in (:mod:`.importer`), with
the module rules in :mod:`.modules`, :mod:`.snntorch` and :mod:`.norse`.

Kept free of imports so that importing the package never imports torch."""
