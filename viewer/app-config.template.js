/*
 * OHIF Viewer configuration written by Candor's viewer (viewer/ohif.py renders this template).
 *
 * One DICOMweb data source: the Orthanc DICOMweb plug-in, reached through the
 * viewer server's same-origin proxy (viewer/proxy.py), so every root is a path
 * on the page's own origin and no CORS is involved. Placeholders (a dollar sign
 * and a name) are filled by Python's string.Template.
 */
window.config = {
  name: 'candor-viewer',
  routerBasename: '/',
  extensions: [],
  modes: [],
  customizationService: {},
  showStudyList: true,
  // Research deployment on loopback: no investigational-use modal in front of the images.
  investigationalUseDialog: { option: 'never' },
  // Headless Chromium renders WebGL through SwiftShader; do not cover the viewport with a notice.
  showCPUFallbackMessage: false,
  showWarningMessageForCrossOrigin: false,
  showLoadingIndicator: true,
  maxNumberOfWebWorkers: $web_workers,
  showErrorDetails: 'always',
  maxNumRequests: { interaction: 100, thumbnail: 10, prefetch: 10 },
  defaultDataSourceName: 'orthanc',
  dataSources: [
    {
      namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
      sourceName: 'orthanc',
      configuration: {
        friendlyName: '$friendly_name',
        name: 'orthanc',
        qidoRoot: '$dicomweb_root',
        wadoRoot: '$dicomweb_root',
        wadoUriRoot: '$wado_uri_root',
        qidoSupportsIncludeField: false,
        imageRendering: 'wadors',
        thumbnailRendering: 'wadors',
        enableStudyLazyLoad: true,
        supportsFuzzyMatching: false,
        supportsWildcard: true,
        staticWado: false,
        singlepart: 'bulkdata,video',
        omitQuotationForMultipartRequest: true,
        bulkDataURI: { enabled: true, relativeResolution: 'studies' },
      },
    },
  ],
};
