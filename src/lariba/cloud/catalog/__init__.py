"""What users can choose from: regions, sizes, images and their prices."""
