require "fileinto";

  fileinto;
