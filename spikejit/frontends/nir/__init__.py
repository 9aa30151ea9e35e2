"""The NIR frontend: ``.nir`` files and ``nir.NIRGraph`` objects in (:mod:`.importer`),
NIR out (:mod:`.exporter`). The modules are listed in ``spikejit/frontends/README.md``.

Kept free of imports so that ``spikejit.frontends.nir.schema`` (used by the op-facts
tables) does not pull in the HDF5 reader."""
