"""The 3D printing lab: CT or MRI from a PACS or an upload to print-ready, traceable meshes.

``volume`` and ``mesh`` are the two value types everything else passes around; ``dicom``,
``nifti`` and ``pacs`` read images; ``segment``, ``surface`` and ``design`` make geometry;
``checks`` says whether a part can be printed; ``export`` writes STL and 3MF; ``service`` records
studies and exports on the patient's record. The heavy stacks (pydicom, VTK, manifold3d) are the
``print`` extra and are imported where they are used.
"""
